package mcp

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/mark3labs/mcp-go/server"

	"github.com/hustack/hustack/store"
)

// NewHandler returns the Streamable HTTP endpoint that package api mounts at
// /mcp behind its Bearer authentication, rate limiting and usage logging. The
// tools run as the principal api put on the request context.
//
// It is stateless: every POST carries everything it needs (so any API
// instance can serve any request), and it serves clients speaking protocol
// 2025-11-25 and 2026-07-28 on the same endpoint. GET answers 405, which
// tells clients there is no server-initiated stream: this server sends no
// notifications. DNS-rebinding protection is off because the endpoint is
// only reached with a Bearer API key, which a rebound browser page does not
// have, and it would refuse every request that a reverse proxy on the same
// host forwards with the public Host header.
func NewHandler(svc *store.Service, cfg Config) http.Handler {
	logger := cfg.logger()
	return server.NewStreamableHTTPServer(NewServer(InProcess(svc), cfg),
		server.WithStateLess(true),
		server.WithDisableStreaming(true),
		server.WithDisableLocalhostProtection(true),
		// The transport logs every refused GET at info level; keep its
		// warnings and errors only.
		server.WithStreamableHTTPLogger(slog.New(minLevel{logger.Handler(), slog.LevelWarn})),
	)
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(as), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
