package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// memory is the in-memory GCRA: per key, the theoretical arrival time (tat)
// of the next request, and, in synced mode, the requests allowed here that
// Redis has not been told about yet. A tat in the past is the same as no
// entry, so expired entries can be swept without changing any decision.
type memory struct {
	seed   maphash.Seed
	base   time.Time // times are nanoseconds since base (monotonic)
	shards [16]memShard
}

type entry struct {
	tat     int64
	pending int             // allowed here since the last sync
	since   int64           // when the first pending request was allowed
	lim     store.RateLimit // the key's limit at its last request
}

type memShard struct {
	mu      sync.Mutex
	m       map[string]entry
	sweepAt int
	_       [40]byte // keep shards on separate cache lines
}

const minSweep = 1024

func newMemory() *memory {
	m := &memory{seed: maphash.MakeSeed(), base: time.Now()}
	for i := range m.shards {
		m.shards[i].m = map[string]entry{}
		m.shards[i].sweepAt = minSweep
	}
	return m
}

func (m *memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%uint64(len(m.shards))]
}

func (m *memory) nanos(t time.Time) int64 { return int64(t.Sub(m.base)) }

// allow applies GCRA with burst = Count and emission interval Period/Count,
// as redis_rate does. With count, an allowed request is kept as pending for
// the next sync.
func (m *memory) allow(key string, lim store.RateLimit, at time.Time, count bool) api.RateDecision {
	now := m.nanos(at)
	period := int64(lim.Period)
	interval := period / int64(lim.Count)
	sh := m.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	tat := max(e.tat, now)
	newTat := tat + interval
	allowAt := newTat - period
	if now < allowAt {
		sh.mu.Unlock()
		return api.RateDecision{
			Limit:      lim.Count,
			Reset:      time.Duration(tat - now),
			RetryAfter: time.Duration(allowAt - now),
		}
	}
	e.tat, e.lim = newTat, lim
	if count {
		if e.pending == 0 {
			e.since = now
		}
		e.pending++
	}
	sh.put(key, e, now)
	sh.mu.Unlock()
	return api.RateDecision{
		Allowed:   true,
		Limit:     lim.Count,
		Remaining: int((now - allowAt) / interval),
		Reset:     time.Duration(newTat - now),
	}
}

// advance moves a key's tat to at least tat, as learnt from Redis.
func (m *memory) advance(key string, tat time.Time) {
	now := m.nanos(time.Now())
	sh := m.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	e.tat = max(e.tat, m.nanos(tat))
	sh.put(key, e, now)
	sh.mu.Unlock()
}

// pendingKey is what a sync tells Redis about one key.
type pendingKey struct {
	key     string
	n       int
	elapsed time.Duration // over which the n requests were allowed
	lim     store.RateLimit
}

// takePending returns the keys with pending requests and clears their
// counts.
func (m *memory) takePending(at time.Time, into []pendingKey) []pendingKey {
	now := m.nanos(at)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.pending > 0 {
				into = append(into, pendingKey{key: k, n: e.pending, elapsed: time.Duration(now - e.since), lim: e.lim})
				e.pending = 0
				sh.m[k] = e
			}
		}
		sh.mu.Unlock()
	}
	return into
}

// put stores a key's entry, sweeping expired entries when the shard has
// doubled since the last sweep; the caller holds mu.
func (sh *memShard) put(key string, e entry, now int64) {
	if e.tat <= now && e.pending == 0 {
		delete(sh.m, key)
		return
	}
	sh.m[key] = e
	if len(sh.m) >= sh.sweepAt {
		for k, e := range sh.m {
			if e.tat <= now && e.pending == 0 {
				delete(sh.m, k)
			}
		}
		sh.sweepAt = max(2*len(sh.m), minSweep)
	}
}

// size returns the number of keys held, for tests.
func (m *memory) size() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += len(m.shards[i].m)
		m.shards[i].mu.Unlock()
	}
	return n
}
