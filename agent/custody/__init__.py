"""The custody core: what makes held evidence provable.

- `keys`: the station's Ed25519 key.
- `digest`: SHA-256 of a file the station holds.
- `staging`: the staging tree's names (held copies, sidecars, receipts), made nowhere else.
- `records`: a custody record's canonical form, envelope, hash and link, and its one check.
- `seal`: signing records into the hash chain; sidecars beside the staged copies.
- `chainfiles`: the chain kept beside staging (audit sidecars, the head).
- `archive`: purged copies' sidecars, one append-only file a day instead of one file each.
- `audit`: technician actions as signed records in the same chain.
- `integrity`: the cheap checks at every open that the database still holds what was committed.
- `verify`: the full check of staged bytes, signatures, chain and sidecars.
- `recovery`: start-up reconciliation under the writer lock, of what is live and the chain's tail.

Custody never reads a camera, never talks to a sink and never decides policy.
"""
