package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// enqueueRetention enqueues the usage retention task of the slot holding
// now, unless this or another Server already did. It reports whether it
// enqueued.
func (s *Server) enqueueRetention(ctx context.Context, now time.Time) (bool, error) {
	for _, p := range s.periodic {
		if p.id == usageRetentionID {
			return s.enqueuePeriodic(ctx, p, now)
		}
	}
	return false, errors.New("worker: usage retention is disabled")
}

// capture is a slog.Handler that keeps every record, for checks on what is
// logged and how often.
type capture struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (r logRecord) int(key string) int64 {
	v, ok := r.attrs[key]
	if !ok {
		return -1
	}
	switch v.Kind() {
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return int64(v.Uint64())
	}
	return -1
}

func (r logRecord) str(key string) string { return r.attrs[key].String() }

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }

func (c *capture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve()
		return true
	})
	c.mu.Lock()
	c.recs = append(c.recs, rec)
	c.mu.Unlock()
	return nil
}

// records returns the records at level whose message starts with prefix.
func (c *capture) records(level slog.Level, prefix string) []logRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logRecord
	for _, r := range c.recs {
		if r.level == level && strings.HasPrefix(r.msg, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (c *capture) count(level slog.Level, prefix string) int { return len(c.records(level, prefix)) }

func (c *capture) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.recs))
	for i, r := range c.recs {
		out[i] = r.level.String() + " " + r.msg
	}
	return out
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestMain(m *testing.M) {
	// The outage tests make go-redis complain on stderr about every failed
	// dial; those lines are expected there and say nothing about the result.
	LogRedisInternals(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
