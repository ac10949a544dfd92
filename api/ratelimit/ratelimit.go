// Package ratelimit enforces the per-key rate limits of API keys
// (store.Principal.RateLimit) with GCRA, the generic cell rate algorithm: a
// key may make Count requests at once, and then one more every
// Period/Count, so that it never exceeds Count requests in any Period.
//
// # Exact mode (the default)
//
// Every decision is made in Redis (github.com/go-redis/redis_rate), so all
// API instances that share the Redis share each key's limit exactly. It
// costs one Redis round trip per request: about 80-100 µs on loopback here,
// and some 20 µs of Redis and client CPU per request under concurrency.
//
// # Synced mode (Config.SyncInterval > 0)
//
// Each instance decides from its own copy of every key's GCRA state, in
// about 0.1 µs, and every SyncInterval adds what it allowed to the shared
// state in Redis and takes back what all instances used: one pipelined
// round trip per interval for all active keys, off the request path. The
// stated error: an instance does not see the other instances' requests for
// a key until it syncs that key, so a key can exceed its limit by up to one
// burst (Count requests) per other instance, plus what the limit lets
// through in one SyncInterval; the excess is then counted in Redis, and every
// instance refuses the key until it is paid back, so over longer windows the
// limit holds. With one instance, the limit is exact.
//
// # Degraded mode
//
// When Redis fails, or does not answer within Config.Timeout, the Limiter
// answers from its in-memory GCRA instead of failing the request, and tries
// Redis again in the background (every Config.ProbeInterval in exact mode,
// at every sync in synced mode) until it answers. Its guarantees then are:
//
//   - Requests never fail because of Redis, and never wait for it: in exact
//     mode only the request that meets the failure waits, for at most
//     Config.Timeout; in synced mode no request waits.
//   - Each instance enforces every key's limit on its own, starting from the
//     last state it saw in Redis for that key. With N instances, a key can
//     make up to N times its limit in total while Redis is away.
//   - What is counted in memory during the outage is not written back: when
//     Redis returns, the shared limit resumes from what Redis holds, so a
//     key can get up to one extra burst (Count requests) per instance around
//     an outage.
//
// A Limiter built without Redis is the in-memory limiter alone: right for a
// single instance (such as one using the embedded Redis).
package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// Config configures a Limiter. Zero values take the defaults.
type Config struct {
	// Redis is the shared Redis. The Limiter makes its own client from a copy
	// of these options, without retries and with Timeout on every call. Nil:
	// limits are per instance only.
	Redis *redis.Options
	// Prefix starts every key the Limiter writes (default "hustack:");
	// "rate:" is put in front of it, as redis_rate does.
	Prefix string
	// Timeout bounds a Redis call on the request path (default 50 ms): far
	// above a healthy round trip, and the most a request waits when Redis
	// goes away.
	Timeout time.Duration
	// ProbeInterval is how often Redis is tried again in degraded exact mode
	// (default 1 s).
	ProbeInterval time.Duration
	// SyncInterval, when positive, selects synced mode: decisions in memory,
	// shared through Redis every SyncInterval (100 ms is a good value). Zero:
	// exact mode.
	SyncInterval time.Duration
	// Default applies to principals without a limit of their own (default
	// store.DefaultRateLimit).
	Default store.RateLimit
}

// Limiter defaults.
const (
	DefaultPrefix        = "hustack:"
	DefaultTimeout       = 50 * time.Millisecond
	DefaultProbeInterval = time.Second
)

// Limiter implements api.RateLimiter. It is safe for concurrent use.
type Limiter struct {
	cfg    Config
	rdb    *redis.Client
	rl     *redis_rate.Limiter
	memory *memory
	log    *slog.Logger

	degraded  atomic.Bool
	shared    atomic.Uint64 // decisions made by Redis
	local     atomic.Uint64 // decisions made in memory
	degrades  atomic.Uint64 // switches to degraded mode
	syncs     atomic.Uint64 // successful syncs
	probing   atomic.Bool
	nextProbe atomic.Int64 // unix nanoseconds
	bg        sync.WaitGroup
	stopSync  chan struct{}
	closed    atomic.Bool
}

var _ api.RateLimiter = (*Limiter)(nil)

// New returns a Limiter. Close it to stop its sync and release its Redis
// connections.
func New(cfg Config, logger *slog.Logger) *Limiter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.Default.Count <= 0 || cfg.Default.Period <= 0 {
		cfg.Default = store.DefaultRateLimit
	}
	l := &Limiter{cfg: cfg, memory: newMemory(), log: logger.With("component", "ratelimit")}
	if cfg.Redis != nil {
		o := *cfg.Redis
		o.ContextTimeoutEnabled = true // Timeout reaches the socket
		o.MaxRetries = -1              // a failure degrades at once instead of retrying
		o.DialerRetries = 1            // one dial attempt, for the same reason
		o.DialTimeout = max(cfg.Timeout, 250*time.Millisecond)
		l.rdb = redis.NewClient(&o)
		l.rl = redis_rate.NewLimiter(l.rdb)
		if cfg.SyncInterval > 0 {
			l.stopSync = make(chan struct{})
			l.bg.Add(1)
			go l.syncLoop()
		}
	}
	return l
}

// Allow decides whether p may make one more request now. It never returns
// an error: a Redis failure is logged once and degrades the limit as the
// package documentation describes.
func (l *Limiter) Allow(ctx context.Context, p store.Principal) (api.RateDecision, error) {
	lim := p.RateLimit
	if lim.Count <= 0 || lim.Period <= 0 {
		lim = l.cfg.Default
	}
	if l.stopSync != nil {
		l.local.Add(1)
		return l.memory.allow(p.KeyID, lim, time.Now(), true), nil
	}
	if l.rl != nil {
		if !l.degraded.Load() {
			if d, ok := l.allowShared(ctx, p.KeyID, lim); ok {
				l.shared.Add(1)
				return d, nil
			}
		} else {
			l.maybeProbe()
		}
	}
	l.local.Add(1)
	return l.memory.allow(p.KeyID, lim, time.Now(), false), nil
}

// allowShared asks Redis. On failure it switches to degraded mode, unless
// the failure is the caller's own cancellation.
func (l *Limiter) allowShared(ctx context.Context, keyID string, lim store.RateLimit) (api.RateDecision, bool) {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	res, err := l.rl.Allow(cctx, l.cfg.Prefix+keyID, redis_rate.Limit{Rate: lim.Count, Burst: lim.Count, Period: lim.Period})
	cancel()
	if err != nil {
		if ctx.Err() == nil && !l.closed.Load() {
			l.nextProbe.Store(time.Now().Add(l.cfg.ProbeInterval).UnixNano())
			l.degrade(err)
		}
		return api.RateDecision{}, false
	}
	// Keep the in-memory state where Redis has it, so that degraded mode
	// starts from the shared state: the key's "theoretical arrival time" is
	// now plus the time until its bucket is full again.
	l.memory.advance(keyID, time.Now().Add(res.ResetAfter))
	d := api.RateDecision{
		Allowed:   res.Allowed > 0,
		Limit:     lim.Count,
		Remaining: max(res.Remaining, 0),
		Reset:     max(res.ResetAfter, 0),
	}
	if !d.Allowed {
		d.RetryAfter = max(res.RetryAfter, 0)
	}
	return d, true
}

func (l *Limiter) degrade(err error) {
	if !l.degraded.Swap(true) {
		l.degrades.Add(1)
		l.log.Warn("rate limits fall back to per-instance limits: redis failed or was too slow",
			"err", err, "timeout", l.cfg.Timeout)
	}
}

func (l *Limiter) recovered() {
	if l.degraded.Swap(false) {
		l.log.Info("rate limits are shared through redis again")
	}
}

// maybeProbe starts one background Redis check per ProbeInterval.
func (l *Limiter) maybeProbe() {
	next := l.nextProbe.Load()
	now := time.Now().UnixNano()
	if now < next || l.closed.Load() || !l.nextProbe.CompareAndSwap(next, now+int64(l.cfg.ProbeInterval)) {
		return
	}
	if !l.probing.CompareAndSwap(false, true) {
		return
	}
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		defer l.probing.Store(false)
		// A probe may take longer than a request could: it has to dial.
		ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.Timeout, time.Second))
		defer cancel()
		if err := l.rdb.Ping(ctx).Err(); err != nil || l.closed.Load() {
			return
		}
		l.recovered()
	}()
}

// Stats counts the Limiter's decisions.
type Stats struct {
	Shared   uint64 // made by Redis, shared by all instances (exact mode)
	Local    uint64 // made in memory (synced or degraded mode, or no Redis)
	Degrades uint64 // times Redis failed and the Limiter fell back to memory
	Syncs    uint64 // successful syncs with Redis (synced mode)
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	return Stats{Shared: l.shared.Load(), Local: l.local.Load(), Degrades: l.degrades.Load(), Syncs: l.syncs.Load()}
}

// Degraded reports whether Redis failed at the last attempt, so that limits
// are per instance.
func (l *Limiter) Degraded() bool { return l.degraded.Load() }

// Close syncs one last time (synced mode), then releases the Redis
// connections.
func (l *Limiter) Close() error {
	if l.closed.Swap(true) || l.rdb == nil {
		return nil
	}
	if l.stopSync != nil {
		close(l.stopSync)
	}
	l.bg.Wait() // the last sync and any probe end within their timeouts
	return l.rdb.Close()
}
