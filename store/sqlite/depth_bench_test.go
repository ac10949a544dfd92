package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// depthRows is how many accounts BenchmarkListDepth seeds; set
// HUSTACK_BENCH_ROWS to change it (1000000 takes a few minutes to seed and
// about a gigabyte of disk).
func depthRows(b *testing.B) int {
	if s := os.Getenv("HUSTACK_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			b.Fatalf("HUSTACK_BENCH_ROWS=%q: want a number >= 1000", s)
		}
		return n
	}
	return 300_000
}

// seedAccounts inserts n accounts of workspace ws straight into the file, in
// one transaction with one prepared statement, created a millisecond apart
// and updated in another order.
func seedAccounts(b *testing.B, path, ws, keyID string, n int) {
	b.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	must(b, err)
	defer raw.Close()
	ctx := context.Background()
	tx, err := raw.BeginTx(ctx, nil)
	must(b, err)
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO accounts (workspace_id, id, name, industry, website, email, phone, country,
		external_id, created_at, updated_at, created_via, api_key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'api', ?)`)
	must(b, err)
	industries := []string{"Software", "Retail", "Finance", "Health", "Energy", "Media", "Logistics", "Education"}
	countries := []string{"DE", "US", "FR", "GB", "JP", "BR", "IN", "AT", "CH", "NL"}
	base := t0.UnixMilli()
	for i := range n {
		_, err := stmt.ExecContext(ctx, ws, store.NewID(), fmt.Sprint("Account ", i), industries[i%len(industries)],
			"https://example.com", fmt.Sprintf("sales%d@example.com", i), "+49 30 1234", countries[i%len(countries)],
			fmt.Sprint("ext-", i), base+int64(i), base+int64((i*7919)%n), keyID)
		if err != nil {
			b.Fatal(err)
		}
	}
	must(b, stmt.Close())
	must(b, tx.Commit())
	_, err = raw.ExecContext(ctx, "ANALYZE")
	must(b, err)
}

// BenchmarkListDepth compares the first page of a large workspace's list
// with a page deep in it, reached by cursor (keyset) and by offset. With a
// cursor, a deep page costs what the first page costs; an offset walks
// every row before it.
func BenchmarkListDepth(b *testing.B) {
	n := depthRows(b)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "depth.db")
	db := openPath(b, path)
	svc := store.NewService(db)
	ws, key, raw := seed(b, svc)
	other, otherKey, _ := seed(b, svc)
	must(b, db.Close())

	start := time.Now()
	seedAccounts(b, path, ws.ID, key.ID, n)
	seedAccounts(b, path, other.ID, otherKey.ID, n/10)
	b.Logf("seeded %d accounts (and %d in another workspace) in %v", n, n/10, time.Since(start).Round(time.Millisecond))

	db = openPath(b, path)
	b.Cleanup(func() { db.Close() })
	svc = store.NewService(db)
	p, err := svc.Authenticate(ctx, raw)
	must(b, err)
	sc := svc.Scoped(p)

	// deepCursor pages through to depth by cursor once, outside the timing.
	depth := n - 100
	deepCursor := func(sort string, filters map[string]string) string {
		lp := store.ListParams{Limit: store.MaxLimit, Sort: sort, Filters: filters}
		seen := 0
		for {
			page, err := sc.FindRecords(ctx, store.Accounts, lp)
			must(b, err)
			seen += len(page.Data)
			if page.Pagination.NextCursor == nil {
				b.Fatalf("the list ended after %d records, before depth %d", seen, depth)
			}
			lp = store.ListParams{Limit: store.MaxLimit, Cursor: *page.Pagination.NextCursor, Filters: filters}
			if seen+store.MaxLimit > depth {
				lp.Limit = depth - seen
			}
			if seen == depth {
				return *page.Pagination.NextCursor
			}
		}
	}

	// run benchmarks one list request; wantLen < 0 accepts any non-empty page.
	run := func(name string, lp store.ListParams, wantLen int) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, err := sc.FindRecords(ctx, store.Accounts, lp)
				if err != nil || len(page.Data) != wantLen && wantLen >= 0 || len(page.Data) == 0 {
					b.Fatalf("%v, %d records, want %d", err, len(page.Data), wantLen)
				}
			}
		})
	}
	const limit = store.DefaultLimit
	for _, sort := range []string{"-created_at", "updated_at"} {
		run("first/"+sort, store.ListParams{Limit: limit, Sort: sort}, limit)
		run(fmt.Sprintf("cursor_%d/%s", depth, sort), store.ListParams{Limit: limit, Cursor: deepCursor(sort, nil)}, limit)
		run(fmt.Sprintf("offset_%d/%s", depth, sort), store.ListParams{Limit: limit, Sort: sort, Offset: depth}, limit)
	}
	// A filter matching one in ten, by its index.
	country := map[string]string{"country": "DE"}
	run("first/country", store.ListParams{Limit: limit, Filters: country}, limit)
	cdepth := n/10 - 100
	depth = cdepth
	run(fmt.Sprintf("cursor_%d/country", cdepth), store.ListParams{Limit: limit, Cursor: deepCursor("", country), Filters: country}, limit)
	run(fmt.Sprintf("offset_%d/country", cdepth), store.ListParams{Limit: limit, Offset: cdepth, Filters: country}, limit)
	// A search reads rows in order until it has a page: a term every
	// record matches is cheap, a rare one reads the whole workspace.
	run("search_every", store.ListParams{Limit: limit, Q: "ACCOUNT"}, limit)
	run("search_rare", store.ListParams{Limit: limit, Q: fmt.Sprint("account ", n/2)}, -1)
}
