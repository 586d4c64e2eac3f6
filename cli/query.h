/* The SQL that turns rows into the JSON objects users see, shared by the CLI listings
 * (query.c, status.c) and the MCP tools (mcp_tools.c) so both show a row the same way.
 * Aliases: a = accounts, m = messages, v = conversations, f = email_folders. */
#ifndef MP_CLI_QUERY_H
#define MP_CLI_QUERY_H

/* A message in a listing. */
#define QUERY_MESSAGE_JSON                                                                        \
	"json_build_object('id', m.id, 'account', a.name, 'provider', m.provider, "               \
	" 'date', coalesce(m.sent_at, m.received_at), 'from', m.from_email, "                     \
	" 'from_name', m.from_name, 'subject', m.subject, 'snippet', m.snippet, "                 \
	" 'conversation_id', m.conversation_id, 'direction', m.direction, "                       \
	" 'parse_error', m.parse_error)"

/* One message in full; BODY_LIMIT is an SQL expression capping each body's characters. */
#define QUERY_MESSAGE_FULL_JSON(BODY_LIMIT)                                                        \
	"json_build_object('id', m.id, 'account', a.name, 'provider', m.provider, "               \
	" 'message_id', m.message_id, 'subject', m.subject, "                                     \
	" 'from', json_build_object('name', m.from_name, 'email', m.from_email), "                \
	" 'to', m.\"to\", 'cc', m.cc, 'date', m.sent_at, 'received_at', m.received_at, "          \
	" 'direction', m.direction, 'conversation_id', m.conversation_id, "                       \
	" 'folders', coalesce((SELECT json_agg(json_build_object('folder', f.name, 'uid', l.uid, " \
	"   'flags', l.flags) ORDER BY f.name, l.uid) FROM message_locations l "                  \
	"   JOIN email_folders f ON f.id = l.folder_id WHERE l.message_id = m.id), '[]'::json), " \
	" 'attachments', m.attachments, 'parse_error', m.parse_error, "                           \
	" 'body_clean', left(m.body_clean, " BODY_LIMIT "), "                                      \
	" 'body_text', left(m.body_text, " BODY_LIMIT "))"

/* A conversation in a listing. */
#define QUERY_CONVERSATION_JSON                                                                   \
	"json_build_object('id', v.id, 'account', a.name, 'provider', v.provider, "               \
	" 'display_name', v.display_name, 'subject', v.subject, "                                 \
	" 'message_count', v.message_count, 'unread_count', v.unread_count, "                     \
	" 'participants', v.participants, 'first_message_at', v.first_message_at, "               \
	" 'last_message_at', v.last_message_at)"

/* A folder: message_count and unread_count are the server's (STATUS), as the mirror keeps
 * them. */
#define QUERY_FOLDER_JSON                                                                         \
	"json_build_object('account', a.name, 'provider', f.provider, 'name', f.name, "           \
	" 'special_use', f.special_use, 'message_count', f.message_count, "                       \
	" 'unread_count', f.unread_count, 'uidvalidity', f.uidvalidity, 'last_uid', f.last_uid, " \
	" 'last_synced_at', f.last_synced_at, 'last_error', f.last_error)"

#endif
