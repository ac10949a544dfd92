package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hustack/hustack/worker"
)

// Server timeouts. Request bodies are at most 1 MiB, so a minute to read or
// write one is generous; idle keep-alive connections are closed after two.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	writeTimeout      = time.Minute
	idleTimeout       = 2 * time.Minute
	// drainTimeout bounds how long a shutdown waits for in-flight requests.
	drainTimeout = 15 * time.Second
	// closeTimeout bounds the rest of a shutdown: enqueueing the buffered
	// usage events and, with the embedded Redis, processing them.
	closeTimeout = 15 * time.Second
)

func runServe(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	fs.StringVar(&c.cfg.Addr, "addr", c.cfg.Addr, "listen on `ADDR` (HUSTACK_ADDR)")
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	worker.LogRedisInternals(newLogger(c.cfg, c.stderr))
	ln, err := net.Listen("tcp", c.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.cfg.Addr, err)
	}
	return serveOn(ctx, c, ln)
}

// serveOn runs the API server on ln until ctx is cancelled, then shuts it
// down gracefully: the HTTP server drains, then the app closes in order
// (see app.Close). It closes ln.
func serveOn(ctx context.Context, c *cli, ln net.Listener, opts ...appOption) error {
	logger := newLogger(c.cfg, c.stderr)
	logger.Debug("configuration", "config", c.cfg)
	a, err := newApp(ctx, c.cfg, logger, opts...)
	if err != nil {
		ln.Close()
		return err
	}
	logger.Info("hustack listening", "addr", "http://"+ln.Addr().String(), "store", c.cfg.storeDescription(),
		"redis", redisDescription(c.cfg), "worker", onOff(a.Worker != nil), "usage", onOff(a.Batcher != nil),
		"mcp", onOff(c.cfg.MCP), "version", version())
	serveErr := serveHTTP(ctx, ln, a.Handler(), logger, drainTimeout)
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := a.Close(closeCtx); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	if serveErr == nil {
		logger.Info("hustack stopped")
	}
	return serveErr
}

// redisDescription says which Redis the configuration selects, without
// secrets.
func redisDescription(cfg Config) string {
	if cfg.RedisURL == "" {
		return "embedded"
	}
	return maskURL(cfg.RedisURL)
}

// serveHTTP serves handler on ln until ctx is cancelled, then stops
// accepting connections and waits up to drain for in-flight requests to
// finish. It returns nil after a clean shutdown.
func serveHTTP(ctx context.Context, ln net.Listener, handler http.Handler, logger *slog.Logger, drain time.Duration) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests do not inherit ctx: cancelling it starts the drain rather
		// than aborting the requests being drained.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_timeout", drain.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close() // drop the requests that did not finish in time
		err = fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", drain, err)
	}
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// newLogger returns the logger of the configured level and format, writing
// to w.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
