-- Raw payloads compressed (zstd, one frame per record): `raw_z` holds them; `raw` keeps the
-- text of records stored before, and '' for those stored since.
ALTER TABLE records ADD COLUMN raw_z BLOB;
