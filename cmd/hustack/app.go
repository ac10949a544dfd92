package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/api/ratelimit"
	hustackmcp "github.com/hustack/hustack/mcp"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
)

// Rate limiter modes (HUSTACK_RATE_LIMIT_MODE), used when REDIS_URL is set.
const (
	rateLimitExact  = "exact"  // every decision in Redis
	rateLimitSynced = "synced" // decisions in memory, shared through Redis every syncInterval
)

// syncInterval is how often the synced rate limiter shares its counts
// through Redis.
const syncInterval = 100 * time.Millisecond

// app is a whole Hustack API server: the store, Redis (real or embedded),
// the usage batcher, the worker when it runs in process, the rate limiter,
// the MCP endpoint and the HTTP handler over all of them. `serve` and
// `bench` build it with newApp and stop it with Close once the HTTP server
// has drained.
type app struct {
	// Service is the store. Close closes it; a SQLite store can be opened
	// again afterwards with openService on the same configuration.
	Service *store.Service
	// Redis carries the task queues and the shared rate limits.
	Redis *worker.Redis
	// Batcher records usage events; nil when usage logging is off. Its
	// Stats stay readable after Close.
	Batcher *worker.Batcher
	// Worker processes usage batches in this process; nil when it runs
	// elsewhere (HUSTACK_WORKER=off).
	Worker *worker.Server
	// Limiter enforces the keys' rate limits.
	Limiter *ratelimit.Limiter

	cfg     Config
	log     *slog.Logger
	handler http.Handler

	closeOnce sync.Once
	closeErr  error
}

// appOptions are the choices newApp leaves to its callers beyond Config.
type appOptions struct {
	usage        bool
	dataDir      string
	storeOptions []store.Option
	batcher      worker.BatcherConfig
	worker       worker.Config
}

// appOption changes how newApp builds the server.
type appOption func(*appOptions)

// withoutUsage turns usage logging off: no events are recorded, so no
// Batcher is built.
func withoutUsage() appOption { return func(o *appOptions) { o.usage = false } }

// withDataDir keeps the SQLite store in dir instead of the configured data
// directory (unused when MONGODB_URI is set).
func withDataDir(dir string) appOption { return func(o *appOptions) { o.dataDir = dir } }

// withStoreOptions passes options to the store.Service.
func withStoreOptions(opts ...store.Option) appOption {
	return func(o *appOptions) { o.storeOptions = append(o.storeOptions, opts...) }
}

// withBatcherConfig configures the usage batcher (zero fields take the
// worker package's defaults).
func withBatcherConfig(c worker.BatcherConfig) appOption {
	return func(o *appOptions) { o.batcher = c }
}

// withWorkerConfig configures the in-process worker; its zero fields take
// the configuration's values (Config.workerConfig).
func withWorkerConfig(c worker.Config) appOption {
	return func(o *appOptions) { o.worker = c }
}

// newApp opens the store and Redis and builds everything the API serves
// with. On error, whatever was opened is closed again. The caller serves
// Handler and, once the HTTP server has stopped, calls Close.
func newApp(ctx context.Context, cfg Config, logger *slog.Logger, opts ...appOption) (_ *app, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := appOptions{usage: true}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	a := &app{cfg: cfg, log: logger}
	defer func() {
		if err != nil {
			a.Close(context.WithoutCancel(ctx))
		}
	}()

	if a.Service, err = openService(ctx, cfg, o.storeOptions...); err != nil {
		return nil, err
	}
	if a.Redis, err = worker.OpenRedis(ctx, cfg.RedisURL, logger); err != nil {
		return nil, errors.New(maskSecrets(err.Error(), cfg.RedisURL))
	}
	if !cfg.Worker && a.Redis.Embedded() && o.usage {
		logger.Error("HUSTACK_WORKER=off without REDIS_URL: usage events go to the embedded Redis of this " +
			"process, which no worker can reach; they are never stored and are lost at exit. " +
			"Set REDIS_URL to a Redis that a `hustack worker` also uses, or turn the worker on.")
	}
	if o.usage {
		a.Batcher = worker.NewBatcher(a.Redis.Client, o.batcher, logger)
	}
	warnInsecureWebhooks(cfg, logger)
	// Replays and test pings go to the delivery workers at once.
	a.Service.SetDispatcher(worker.NewDispatcher(a.Redis.Client, o.worker.Queues.Webhooks))
	if cfg.Worker {
		a.Worker = worker.NewServer(a.Redis.Client, a.Service, cfg.workerConfig(o.worker), logger)
		if err = a.Worker.Start(); err != nil {
			a.Worker = nil
			return nil, err
		}
	}
	a.Limiter = newLimiter(cfg, a.Redis, logger)

	ac := api.Config{
		Service: a.Service,
		Logger:  logger,
		Limiter: a.Limiter,
		Version: version(),
	}
	if a.Batcher != nil {
		ac.Usage = a.Batcher
	}
	if cfg.MCP {
		ac.MCP = hustackmcp.NewHandler(a.Service, hustackmcp.Config{
			Logger:    logger,
			RequestID: api.RequestIDFromContext,
			Version:   version(),
		})
	}
	a.handler = api.New(ac)
	return a, nil
}

// warnInsecureWebhooks says, once at start-up, that webhooks may reach this
// network when HUSTACK_WEBHOOK_ALLOW_INSECURE is on.
func warnInsecureWebhooks(cfg Config, logger *slog.Logger) {
	if cfg.WebhookAllowInsecure {
		logger.Warn("HUSTACK_WEBHOOK_ALLOW_INSECURE is on: webhooks may use http and reach loopback, private and " +
			"link-local addresses, including this host's services; use it only for tests and local development")
	}
}

// newLimiter builds the rate limiter: per instance with the embedded Redis,
// which nothing else shares; otherwise shared through Redis in the
// configured mode.
func newLimiter(cfg Config, rds *worker.Redis, logger *slog.Logger) *ratelimit.Limiter {
	lc := ratelimit.Config{Default: cfg.RateLimit}
	mode := "per-instance"
	if !rds.Embedded() {
		lc.Redis = rds.Options()
		mode = cfg.RateLimitMode
		if cfg.RateLimitMode == rateLimitSynced {
			lc.SyncInterval = syncInterval
		}
	}
	logger.Info("rate limits", "mode", mode)
	return ratelimit.New(lc, logger)
}

// Handler is the HTTP handler of the API.
func (a *app) Handler() http.Handler { return a.handler }

// Close stops everything in order, once the HTTP server has stopped taking
// requests: the batcher enqueues what it buffers; with the embedded Redis
// the worker first processes every queued batch (they would die with the
// process); the worker stops, handing unfinished tasks back to Redis; then
// the limiter, Redis and the store close. ctx bounds the flush and the
// drain. Close reports every failure and may be called more than once.
func (a *app) Close(ctx context.Context) error {
	a.closeOnce.Do(func() { a.closeErr = a.close(ctx) })
	return a.closeErr
}

func (a *app) close(ctx context.Context) error {
	var errs []error
	if a.Batcher != nil {
		if err := a.Batcher.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush usage events: %w", err))
		}
	}
	if a.Worker != nil {
		if a.Redis.Embedded() {
			if err := a.Worker.Drain(ctx); err != nil {
				errs = append(errs, fmt.Errorf("process queued usage batches: %w", err))
			}
		}
		a.Worker.Shutdown()
	}
	if a.Limiter != nil {
		if err := a.Limiter.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close rate limiter: %w", err))
		}
	}
	if a.Redis != nil {
		if err := a.Redis.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close redis: %w", err))
		}
	}
	if a.Service != nil {
		if err := a.Service.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	return errors.Join(errs...)
}
