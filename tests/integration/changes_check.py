#!/usr/bin/env python3
"""Checks change-stream entries against Postgres, for test_changes.sh.

usage: changes_check.py BEFORE AFTER MESSAGES ENTRIES ACCOUNT_ID

BEFORE and AFTER are the account's locations ("folder_id uid message_id flag,flag" lines)
before and after a sync, MESSAGES the message ids stored after it, ENTRIES the JSON lines
changes_app.py read. The entries must tell exactly what changed between the two snapshots:
message_added for each new location, flags_changed for each changed flag set (with the new
flags), message_removed for each location gone except those of a folder_removed or
folder_renamed folder, and for each message row that went with its last location either
message_deleted=1 on its message_removed or (once the account's last running sync ended) a
message_deleted entry, each naming the row's ids. Prints what differs and exits 1, or prints a summary.
"""
import json
import sys


def locations(path):
    out = {}
    for line in open(path):
        parts = line.rstrip("\n").split(" ")
        if len(parts) < 3:
            continue
        flags = frozenset(f for f in (parts[3] if len(parts) > 3 else "").split(",") if f)
        out[(int(parts[0]), int(parts[1]))] = (int(parts[2]), flags)
    return out


def main():
    before, after = locations(sys.argv[1]), locations(sys.argv[2])
    stored = {int(x) for x in open(sys.argv[3]).read().split()}
    entries = [json.loads(l) for l in open(sys.argv[4]) if l.strip()]
    account = sys.argv[5]
    bad = []
    mine = [e for e in entries if e.get("account_id") == account]

    def key(e):
        return (int(e["folder_id"]), int(e["uid"]))

    added = {key(e): int(e["message_id"]) for e in mine if e["type"] == "message_added"}
    want_added = {k: v[0] for k, v in after.items() if k not in before}
    if added != want_added:
        bad.append(f"message_added {sorted(added.items())[:8]} != new locations {sorted(want_added.items())[:8]}")

    flagged = {key(e): (int(e["message_id"]), frozenset(json.loads(e["flags"])))
               for e in mine if e["type"] == "flags_changed"}
    want_flags = {k: after[k] for k in after if k in before and before[k][1] != after[k][1]}
    if flagged != want_flags:
        bad.append(f"flags_changed {sorted(flagged.items())[:6]} != changed rows {sorted(want_flags.items())[:6]}")

    # A row that went with its last location is told on its message_removed (deleted at once)
    # or by a message_deleted entry when the account's last running sync ended.
    deleted_later = {int(e["message_id"]) for e in mine if e["type"] == "message_deleted"}
    removed = {key(e): (int(e["message_id"]),
                        e["message_deleted"] == "1" or int(e["message_id"]) in deleted_later)
               for e in mine if e["type"] == "message_removed"}
    # A folder removed (or renamed away) takes every location of it: one entry says so.
    gone_folders = {int(e.get("old_folder_id") or e["folder_id"]) for e in mine
                    if e["type"] in ("folder_removed", "folder_renamed")}
    want_removed = {k: (v[0], v[0] not in stored) for k, v in before.items()
                    if k not in after and k[0] not in gone_folders}
    if removed != want_removed:
        bad.append(f"message_removed {sorted(removed.items())} != gone locations {sorted(want_removed.items())}")
    if deleted_later - {v[0] for v in before.values() if v[0] not in stored}:
        bad.append(f"message_deleted for rows still stored: {sorted(deleted_later & stored)}")

    if bad:
        print("  " + "\n  ".join(bad))
        sys.exit(1)
    print(f"  {len(added)} added, {len(flagged)} flag changes, {len(removed)} removed "
          f"({sum(d for _, d in removed.values())} messages deleted) match Postgres")


main()
