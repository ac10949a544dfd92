package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Redis is the connection to the Redis that carries the task queues and the
// shared rate limits: a real server selected by REDIS_URL, or, when no URL is
// given, an embedded in-process server (miniredis) so that nothing needs to be
// installed.
//
// The embedded server keeps everything in memory: queued tasks are lost at
// exit and nothing is shared with other processes. Drain the worker before
// closing it (see Server.Drain).
type Redis struct {
	// Client is the shared connection pool. Build asynq clients and servers
	// on it with asynq.NewClientFromRedisClient / NewServerFromRedisClient (or
	// NewBatcher and NewServer); it is closed by Close.
	Client *redis.Client

	opts     *redis.Options
	mini     *miniredis.Miniredis
	stopTick chan struct{}
	ticked   sync.WaitGroup
	once     sync.Once
}

// OpenRedis connects to the Redis at url (redis://[user:password@]host:port/db
// or rediss://...). With an empty url it starts an embedded Redis on a
// loopback port, with a ticker that lets its keys expire (miniredis never
// expires keys by itself).
//
// OpenRedis fails only on a malformed url or when the embedded server cannot
// start. A real Redis that does not answer yet is logged and tolerated: usage
// events stay buffered and rate limits are per instance until it does.
func OpenRedis(ctx context.Context, url string, logger *slog.Logger) (*Redis, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Redis{}
	if url == "" {
		r.mini = miniredis.NewMiniRedis()
		if err := r.mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("worker: start embedded redis: %w", err)
		}
		r.opts = &redis.Options{Addr: r.mini.Addr()}
		r.stopTick = make(chan struct{})
		r.ticked.Add(1)
		go r.expireKeys()
		logger.Warn("REDIS_URL is not set: using an embedded in-process Redis; "+
			"queued tasks and rate limits live in this process only and are lost at exit",
			"addr", r.mini.Addr())
	} else {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("worker: REDIS_URL: %w", err)
		}
		r.opts = opts
	}
	// Deadlines of the callers' contexts apply to socket reads and writes, so
	// that a hung Redis cannot hold a flush or a shutdown past its deadline.
	r.opts.ContextTimeoutEnabled = true
	r.Client = redis.NewClient(r.Options())

	if url != "" {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := r.Client.Ping(pctx).Err(); err != nil {
			logger.Warn("redis is not answering yet; usage events stay buffered until it does",
				"addr", r.opts.Addr, "db", r.opts.DB, "err", err)
		} else {
			logger.Info("redis connected", "addr", r.opts.Addr, "db", r.opts.DB)
		}
	}
	return r, nil
}

// expireKeys advances the embedded server's clock for key expiry once a
// second, as a real Redis does by itself.
func (r *Redis) expireKeys() {
	defer r.ticked.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.mini.FastForward(time.Second)
		case <-r.stopTick:
			return
		}
	}
}

// Embedded reports whether this is the in-process server.
func (r *Redis) Embedded() bool { return r.mini != nil }

// Addr is the host:port of the server (a loopback port when embedded).
func (r *Redis) Addr() string { return r.opts.Addr }

// Options returns a copy of the connection options, for a client of its own
// (the rate limiter builds one with short timeouts).
func (r *Redis) Options() *redis.Options {
	o := *r.opts
	return &o
}

// ConnOpt returns the connection as asynq describes it, for an
// asynq.Inspector or the asynqmon dashboard.
func (r *Redis) ConnOpt() asynq.RedisClientOpt {
	return asynq.RedisClientOpt{
		Network:   r.opts.Network,
		Addr:      r.opts.Addr,
		Username:  r.opts.Username,
		Password:  r.opts.Password,
		DB:        r.opts.DB,
		TLSConfig: r.opts.TLSConfig,
	}
}

// Close closes the connection pool and stops the embedded server, if any.
// Close everything built on the connection first.
func (r *Redis) Close() error {
	var err error
	r.once.Do(func() {
		err = r.Client.Close()
		if r.mini != nil {
			close(r.stopTick)
			r.ticked.Wait()
			r.mini.Close()
		}
	})
	return err
}

// LogRedisInternals sends go-redis's own log lines (such as a failed dial
// of the connection pool, repeated for as long as Redis is away) to logger
// at debug level; the components built on Redis log an outage once
// themselves. It sets a process-wide hook of go-redis: call it from main.
func LogRedisInternals(logger *slog.Logger) {
	redis.SetLogger(redisLogger{logger.With("source", "go-redis")})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
