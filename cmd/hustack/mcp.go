package main

import (
	"context"
	"fmt"
	"strings"

	hustackmcp "github.com/hustack/hustack/mcp"
)

// runMCP serves the MCP tools over stdin and stdout for a desktop MCP
// client, calling a Hustack server's REST API with an API key: it needs no
// database. stdout carries only the protocol; logs go to stderr.
func runMCP(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	fs.StringVar(&c.cfg.URL, "url", c.cfg.URL, "the REST API's base `URL`, such as http://127.0.0.1:8080/api/v1 (HUSTACK_URL)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if strings.TrimSpace(c.cfg.APIKey) == "" {
		return usageErrorf("mcp: HUSTACK_API_KEY is required: the API key whose workspace and scopes the tools use " +
			"(create one with 'hustack key create'); it is read from the environment only, never from a flag")
	}
	if strings.TrimSpace(c.cfg.URL) == "" {
		return usageErrorf("mcp: HUSTACK_URL (or --url) is required: the Hustack REST API's base URL, such as http://127.0.0.1:8080/api/v1")
	}
	logger := newLogger(c.cfg, c.stderr)
	err := hustackmcp.ServeStdio(ctx, hustackmcp.StdioConfig{
		Config: hustackmcp.Config{Logger: logger, Version: version()},
		URL:    c.cfg.URL,
		Key:    c.cfg.APIKey,
	}, c.stdin, c.stdout)
	if err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}
