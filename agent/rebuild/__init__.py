"""`dockagent rebuild`: a new database from the signed sidecars, when the old one is damaged.

procedure runs the steps in their crash-safe order and is the only entry point; the pieces it calls
each do one thing: chain (read and verify the signed records), rows (the file rows and sessions
those records and the upload receipts tell), tables (write them into the new store), damaged (keep
the old database under its kept names), unsealed (set aside what no record accepts), report (what
the rebuild found and did, for the technician and the signed record). Imports point one way:
procedure -> pieces -> store, records, errors. Nothing in this package speaks SQL or deletes
evidence.
"""
