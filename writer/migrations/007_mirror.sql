-- The mirror after the first sync (issue 9). email_folders.message_count and unread_count are
-- now the server's own (STATUS), not a count of our rows; last_flag_scan_at says when every
-- stored UID's flags were last compared with the server's where CONDSTORE is not available.
-- messages.deleted_at keeps a message whose last location went, for accounts with the
-- keep_deleted option (archives); without it such a message is deleted.
ALTER TABLE email_folders ADD COLUMN last_flag_scan_at timestamptz;
ALTER TABLE messages ADD COLUMN deleted_at timestamptz;
