-- What a credential may do through the MCP server: 'read' (default) or 'read_write'.
ALTER TABLE api_keys ADD COLUMN mcp_access TEXT NOT NULL DEFAULT 'read';
ALTER TABLE connections ADD COLUMN mcp_access TEXT NOT NULL DEFAULT 'read';
