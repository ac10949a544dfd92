package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// countingRecorder stands in for the usage batcher in benchmarks: it keeps
// the cost of building each event on the request path and nothing else.
type countingRecorder struct{ n atomic.Int64 }

func (r *countingRecorder) Record(store.UsageEvent) { r.n.Add(1) }

// benchEnv is the full API and a bare gin handler over one SQLite database
// holding 1000 accounts.
type benchEnv struct {
	key  string
	full http.Handler
	bare http.Handler
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "hustack.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	svc := store.NewService(db)
	ws, err := svc.CreateWorkspace(ctx, "Bench")
	if err != nil {
		b.Fatal(err)
	}
	k, raw, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: ws.ID, Name: "bench", Scopes: store.AllScopes()})
	if err != nil {
		b.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, raw)
	if err != nil {
		b.Fatal(err)
	}
	sc := svc.Scoped(p)
	for i := range 1000 {
		if _, err := sc.CreateRecord(ctx, store.Accounts, map[string]any{
			"name": "Account " + strings.Repeat("x", i%20), "industry": "Software", "country": "US", "email": "info@example.com",
		}); err != nil {
			b.Fatal(err)
		}
	}

	full := api.New(api.Config{Service: svc, Logger: slog.New(slog.DiscardHandler), Usage: &countingRecorder{}})

	bare := gin.New()
	bare.GET("/api/v1/accounts", func(c *gin.Context) {
		rows, err := db.FindRecords(c.Request.Context(), store.Accounts, ws.ID, store.RecordQuery{Limit: 51})
		if err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		more := len(rows) > 50
		if more {
			rows = rows[:50]
		}
		c.JSON(http.StatusOK, store.Page[*store.Record]{Data: rows, Pagination: store.Pagination{Limit: 50, HasMore: more}})
	})
	bare.POST("/api/v1/accounts", func(c *gin.Context) {
		var in map[string]any
		if err := json.NewDecoder(c.Request.Body).Decode(&in); err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: ws.ID,
			Fields: map[string]any{"name": in["name"], "industry": in["industry"]}, CreatedAt: now, UpdatedAt: now,
			CreatedVia: store.CreatedViaAPI, APIKeyID: k.ID}
		if err := db.InsertRecord(c.Request.Context(), rec); err != nil {
			c.AbortWithStatus(http.StatusInternalServerError)
			return
		}
		c.JSON(http.StatusCreated, rec)
	})
	return &benchEnv{key: raw, full: full, bare: bare}
}

// compare runs the same request through the full API and through the bare
// handler, alternately within one loop so both see the same machine load,
// and reports each one's time per request and the throughput ratio.
func (e *benchEnv) compare(b *testing.B, method, path, body string, want int) {
	b.Helper()
	serve := func(h http.Handler) time.Duration {
		var rd *strings.Reader
		req := httptest.NewRequest(method, path, nil)
		if body != "" {
			rd = strings.NewReader(body)
			req = httptest.NewRequest(method, path, rd)
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+e.key)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(start)
		if w.Code != want {
			b.Fatalf("%s %s: status %d: %s", method, path, w.Code, w.Body)
		}
		return d
	}
	serve(e.full) // warm the key cache and connections
	serve(e.bare)
	var full, bare time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		full += serve(e.full)
		bare += serve(e.bare)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(full.Nanoseconds())/n, "api-ns/req")
	b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/req")
	b.ReportMetric(float64(bare)/float64(full), "api/bare-throughput")
}

// BenchmarkListAccounts: authenticated GET /api/v1/accounts?limit=50 through
// the whole API (auth, usage, validation, scoped operation) against a bare
// gin handler running the same backend query and writing the same JSON.
func BenchmarkListAccounts(b *testing.B) {
	newBenchEnv(b).compare(b, http.MethodGet, "/api/v1/accounts?limit=50", "", http.StatusOK)
}

// BenchmarkCreateAccount: POST /api/v1/accounts, full API against a bare
// handler that decodes the body, inserts the record and writes it back.
func BenchmarkCreateAccount(b *testing.B) {
	newBenchEnv(b).compare(b, http.MethodPost, "/api/v1/accounts", `{"name":"Bench Co","industry":"Software"}`, http.StatusCreated)
}
