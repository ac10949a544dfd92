package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// benchDB returns a database with one workspace holding n accounts, and
// another workspace with as many, so that filters matter.
func benchDB(b *testing.B, n int) (*store.Service, store.Principal) {
	b.Helper()
	db := openTemp(b)
	b.Cleanup(func() { db.Close() })
	svc := store.NewService(db)
	ctx := context.Background()
	var principal store.Principal
	for w := range 2 {
		ws, _, raw := seed(b, svc)
		p, err := svc.Authenticate(ctx, raw)
		must(b, err)
		if w == 0 {
			principal = p
		}
		for i := range n {
			rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: ws.ID,
				Fields: map[string]any{"name": fmt.Sprint("Account ", i), "industry": "Software",
					"website": "https://example.com", "email": "sales@example.com", "country": "Germany"},
				CreatedAt: t0.Add(time.Duration(i) * time.Millisecond), UpdatedAt: t0, CreatedVia: "api", APIKeyID: p.KeyID}
			must(b, db.InsertRecord(ctx, rec))
		}
	}
	return svc, principal
}

func BenchmarkFindRecords50(b *testing.B) {
	svc, p := benchDB(b, 1000)
	sc := svc.Scoped(p)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			page, err := sc.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 50})
			if err != nil || len(page.Data) != 50 {
				b.Fatal(err, len(page.Data))
			}
		}
	})
}

func BenchmarkFindRecordByID(b *testing.B) {
	svc, p := benchDB(b, 1000)
	sc := svc.Scoped(p)
	ctx := context.Background()
	page, err := sc.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 1})
	must(b, err)
	id := page.Data[0].ID
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := sc.FindRecordByID(ctx, store.Accounts, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCreateRecord(b *testing.B) {
	svc, p := benchDB(b, 0)
	sc := svc.Scoped(p)
	ctx := context.Background()
	in := map[string]any{"name": "Acme", "industry": "Software", "email": "sales@example.com"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := sc.CreateRecord(ctx, store.Accounts, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAuthenticateUncached(b *testing.B) {
	db := openTemp(b)
	b.Cleanup(func() { db.Close() })
	svc := store.NewService(db, store.WithKeyCacheTTL(0))
	_, _, raw := seed(b, svc)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.Authenticate(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRecordUsage100(b *testing.B) {
	db := openTemp(b)
	b.Cleanup(func() { db.Close() })
	svc := store.NewService(db)
	w, k, _ := seed(b, svc)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		events := make([]store.UsageEvent, 100)
		for j := range events {
			events[j] = store.UsageEvent{ID: store.NewID(), WorkspaceID: w.ID, KeyID: k.ID, Method: "GET",
				Route: "/api/v1/accounts", Status: 200, DurationMS: 1.5, Time: t0.Add(time.Duration(i*100+j) * time.Millisecond),
				RequestID: "r", Transport: store.TransportREST, UserAgent: "bench"}
		}
		must(b, svc.RecordUsage(ctx, events))
	}
}
