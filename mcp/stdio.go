package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

// StdioConfig configures ServeStdio.
type StdioConfig struct {
	Config
	// URL is the REST API's base URL, such as https://hustack.example.com/api/v1
	// (HUSTACK_URL).
	URL string
	// Key is the API key the tools run with (HUSTACK_API_KEY).
	Key string
	// HTTPClient calls the REST API; nil means a client with a one-minute
	// timeout per request.
	HTTPClient *http.Client
}

// UserAgent is what the stdio server sends to the REST API.
const UserAgent = "hustack-mcp/v1"

// ServeStdio serves the tools over stdio, reading JSON-RPC messages from in
// and writing answers to out, until in ends or ctx is cancelled (both a
// clean exit: nil). The tools call the REST API at cfg.URL with cfg.Key, so
// no database is needed. The key's workspace and scopes are learned first
// from GET /me: the same tools are listed as on the HTTP endpoint, and an
// unusable key or unreachable server is an error before anything is served.
// Logs go to cfg.Logger, which must not write to out. Run one at a time per
// process: mcp-go's stdio server keeps its session in a package variable.
func ServeStdio(ctx context.Context, cfg StdioConfig, in io.Reader, out io.Writer) error {
	if cfg.Key == "" {
		return errors.New("an API key is required (HUSTACK_API_KEY)")
	}
	if cfg.URL == "" {
		return errors.New("the Hustack REST API's base URL is required (HUSTACK_URL, e.g. http://127.0.0.1:8080/api/v1)")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	c, err := client.New(cfg.URL, cfg.Key, client.WithHTTPClient(hc), client.WithUserAgent(UserAgent))
	if err != nil {
		return err
	}
	me, err := c.Whoami(ctx)
	if err != nil {
		if code := store.ErrorCode(err); code != store.EINTERNAL {
			return fmt.Errorf("the Hustack API at %s refused to identify the API key: %s: %s", c.BaseURL(), code, store.ErrorMessage(err))
		}
		return fmt.Errorf("cannot identify the API key with the Hustack API at %s: %w", c.BaseURL(), err)
	}
	caller := Caller{Ops: c, Scopes: me.Key.Scopes, KeyID: me.Key.ID}
	logger := cfg.logger()
	s := NewServer(func(context.Context) Caller { return caller }, cfg.Config)
	logger.InfoContext(ctx, "serving MCP over stdio", "url", c.BaseURL(), "workspace", me.Workspace.ID,
		"key", me.Key.Prefix, "scopes", me.Key.Scopes)

	ss := server.NewStdioServer(s)
	ss.SetErrorLogger(slog.NewLogLogger(logger.Handler(), slog.LevelError))
	err = ss.Listen(ctx, in, out)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
