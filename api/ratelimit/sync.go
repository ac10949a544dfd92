package ratelimit

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// syncScript adds n requests, made over the last elapsed seconds, to a
// key's GCRA state, in the representation redis_rate uses (seconds since
// 2017 as a float under "rate:<key>"), so that both modes can share keys.
// The requests were allowed already, so they are counted even past the
// limit: that is how an excess is paid back. It returns the time until the
// key is back to its full burst, in seconds.
var syncScript = redis.NewScript(`
redis.replicate_commands()

local key = KEYS[1]
local interval = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])

local jan_1_2017 = 1483228800
local now = redis.call("TIME")
now = (now[1] - jan_1_2017) + (now[2] / 1000000)

local tat = tonumber(redis.call("GET", key)) or now
tat = math.max(tat, now - elapsed) + n * interval

local reset_after = tat - now
if reset_after > 0 then
  redis.call("SET", key, tat, "EX", math.ceil(reset_after))
end
return tostring(reset_after)
`)

// syncLoop syncs every SyncInterval, and once more when the Limiter closes.
func (l *Limiter) syncLoop() {
	defer l.bg.Done()
	t := time.NewTicker(l.cfg.SyncInterval)
	defer t.Stop()
	var buf []pendingKey
	for {
		select {
		case <-t.C:
			buf = l.sync(buf[:0])
		case <-l.stopSync:
			l.sync(buf[:0])
			return
		}
	}
}

// sync tells Redis what this instance allowed since the last sync and
// advances the local state of those keys to the shared one. When Redis
// fails, the counts are dropped (the outage is covered by the per-instance
// limits) and the Limiter is degraded until a sync succeeds.
func (l *Limiter) sync(buf []pendingKey) []pendingKey {
	start := time.Now()
	pending := l.memory.takePending(start, buf)
	if len(pending) == 0 {
		return pending
	}
	// Off the request path: a slow answer delays the next sync, no request.
	ctx, cancel := context.WithTimeout(context.Background(), max(l.cfg.Timeout, time.Second))
	defer cancel()
	cmds, err := l.pushPending(ctx, pending)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		if err = syncScript.Load(ctx, l.rdb).Err(); err == nil {
			cmds, err = l.pushPending(ctx, pending)
		}
	}
	if err != nil {
		if !l.closed.Load() {
			l.degrade(err)
		}
		return pending
	}
	now := time.Now()
	for i, c := range cmds {
		s, err := c.Text()
		if err != nil {
			continue
		}
		resetAfter, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		l.memory.advance(pending[i].key, now.Add(time.Duration(resetAfter*float64(time.Second))))
	}
	l.syncs.Add(1)
	l.recovered()
	return pending
}

// pushPending runs syncScript for every key in one pipeline.
func (l *Limiter) pushPending(ctx context.Context, pending []pendingKey) ([]*redis.Cmd, error) {
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(pending))
	for i, p := range pending {
		interval := p.lim.Period.Seconds() / float64(p.lim.Count)
		cmds[i] = syncScript.EvalSha(ctx, pipe, []string{"rate:" + l.cfg.Prefix + p.key},
			interval, p.n, p.elapsed.Seconds())
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}
