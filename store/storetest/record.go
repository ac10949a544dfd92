package storetest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func (s *suite) records(t *testing.T) {
	for _, r := range store.Resources {
		t.Run(r.Name, func(t *testing.T) { s.resource(t, r) })
	}

	s.queries(t)

	s.test(t, "ResourcesAreSeparate", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		byResource := map[*store.Resource]*store.Record{}
		for i, r := range store.Resources {
			byResource[r] = insertRecord(t, b, r, w.ID, minimalFields(r, i), at(time.Duration(i)*time.Second))
		}
		// One external id in every resource: no conflict across resources.
		shared := map[*store.Resource]*store.Record{}
		for i, r := range store.Resources {
			f := minimalFields(r, i)
			f[store.ExternalIDField] = "shared"
			shared[r] = insertRecord(t, b, r, w.ID, f, at(time.Duration(i)*time.Second-time.Hour))
		}
		for _, r := range store.Resources {
			got, err := b.FindRecordByExternalID(t.Context(), r, w.ID, "shared")
			must(t, err, "FindRecordByExternalID")
			wantRecord(t, got, shared[r])
		}
		for _, r := range store.Resources {
			got, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Limit: 10, CreatedAfter: at(-time.Minute)})
			must(t, err, "FindRecords")
			wantIDs(t, "FindRecords("+r.Name+")", recordIDs(got), []string{byResource[r].ID})
			for _, other := range store.Resources {
				if other == r {
					continue
				}
				_, err := b.FindRecordByID(t.Context(), other, w.ID, byResource[r].ID)
				if store.ErrorCode(err) != store.ENOTFOUND {
					t.Errorf("FindRecordByID(%s, id of a %s) = %v, want not_found", other.Name, r.Singular, err)
				}
			}
		}
	})
}

func (s *suite) resource(t *testing.T, r *store.Resource) {
	s.resourceWrites(t, r)

	s.test(t, "RoundTrip", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		var recs []*store.Record
		for i := range floats {
			recs = append(recs, insertRecord(t, b, r, w.ID, allFields(r, i), at(time.Duration(i)*time.Minute)))
		}
		for _, want := range recs {
			got, err := b.FindRecordByID(t.Context(), r, w.ID, want.ID)
			must(t, err, "FindRecordByID")
			wantRecord(t, got, want)
		}
		// The list path returns the same values.
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Limit: 100})
		must(t, err, "FindRecords")
		if len(list) != len(recs) {
			t.Fatalf("FindRecords returned %d records, want %d", len(list), len(recs))
		}
		for i, got := range list {
			wantRecord(t, got, recs[len(recs)-1-i])
		}
	})

	s.test(t, "AbsentFieldsStayAbsent", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		want := insertRecord(t, b, r, w.ID, minimalFields(r, 1), at(time.Second))
		got, err := b.FindRecordByID(t.Context(), r, w.ID, want.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, want)
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Limit: 10})
		must(t, err, "FindRecords")
		if len(list) != 1 {
			t.Fatalf("FindRecords returned %d records, want 1", len(list))
		}
		wantRecord(t, list[0], want)
	})

	s.test(t, "LongAndUnicodeValues", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		fields := allFields(r, 0)
		for _, f := range r.Fields {
			if f.MaxLen > 0 {
				// Multi-byte characters up to the field's limit.
				fields[f.Name] = strings.Repeat("é", f.MaxLen-1) + "🚀"
			}
		}
		want := insertRecord(t, b, r, w.ID, fields, at(time.Second))
		got, err := b.FindRecordByID(t.Context(), r, w.ID, want.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, want)
	})

	s.test(t, "HostileStringsStoredLiterally", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		var recs []*store.Record
		for i, h := range hostile {
			fields := map[string]any{}
			for _, f := range r.Fields {
				if f.Type == store.FieldNumber {
					fields[f.Name] = floats[i%len(floats)]
				} else {
					fields[f.Name] = h
				}
			}
			recs = append(recs, insertRecord(t, b, r, w.ID, fields, at(time.Duration(i)*time.Second)))
		}
		for _, want := range recs {
			got, err := b.FindRecordByID(t.Context(), r, w.ID, want.ID)
			must(t, err, "FindRecordByID")
			wantRecord(t, got, want)
		}
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Limit: 100})
		must(t, err, "FindRecords")
		if len(list) != len(hostile) {
			t.Errorf("FindRecords returned %d records, want %d", len(list), len(hostile))
		}
		// Ids that look like operators or SQL find nothing.
		for _, h := range hostile {
			_, err := b.FindRecordByID(t.Context(), r, w.ID, h)
			wantCode(t, err, store.ENOTFOUND)
			_, err = b.FindRecordByID(t.Context(), r, h, recs[0].ID)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "OtherWorkspaceNotFound", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		rec := insertRecord(t, b, r, w1.ID, allFields(r, 0), at(time.Second))
		_, err := b.FindRecordByID(t.Context(), r, w2.ID, rec.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindRecordByID(t.Context(), r, "", rec.ID)
		wantCode(t, err, store.ENOTFOUND)
		got, err := b.FindRecordByID(t.Context(), r, w1.ID, rec.ID)
		must(t, err, "FindRecordByID in its own workspace")
		wantRecord(t, got, rec)
	})

	s.test(t, "UnknownIDNotFound", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		insertRecord(t, b, r, w.ID, minimalFields(r, 0), at(time.Second))
		_, err := b.FindRecordByID(t.Context(), r, w.ID, store.NewID())
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "DuplicateIDConflict", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		rec := insertRecord(t, b, r, w.ID, minimalFields(r, 0), at(time.Second))
		dup := newRecord(r, w.ID, minimalFields(r, 1), at(2*time.Second))
		dup.ID = rec.ID
		wantCode(t, b.InsertRecord(t.Context(), dup), store.ECONFLICT)
		got, err := b.FindRecordByID(t.Context(), r, w.ID, rec.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, rec)
	})

	s.test(t, "ListNewestFirst", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		// Three records share one created_at: they are ordered by id, descending.
		created := []time.Duration{time.Minute, 2 * time.Minute, 2 * time.Minute, 2 * time.Minute, 3 * time.Minute, 0}
		var recs []*store.Record
		for i, d := range created {
			recs = append(recs, newRecord(r, w1.ID, minimalFields(r, i), at(d)))
		}
		// Insert in an order unrelated to the expected one, with records of
		// another workspace in between.
		order := rand.New(rand.NewPCG(1, 2)).Perm(len(recs))
		for _, i := range order {
			must(t, b.InsertRecord(t.Context(), recs[i]), "InsertRecord")
			insertRecord(t, b, r, w2.ID, minimalFields(r, i), at(created[i]))
		}
		want := slices.Clone(recs)
		slices.SortFunc(want, func(a, b *store.Record) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return cmp.Compare(b.ID, a.ID)
		})
		wantAll := recordIDs(want)

		got, err := b.FindRecords(t.Context(), r, w1.ID, store.RecordQuery{Limit: 100})
		must(t, err, "FindRecords")
		wantIDs(t, "FindRecords(limit 100)", recordIDs(got), wantAll)
		for i := range got {
			wantRecord(t, got[i], want[i])
		}

		pages := []struct{ limit, offset int }{{2, 0}, {2, 2}, {2, 4}, {4, 3}, {1, 5}, {3, 6}, {10, 100}, {6, 0}}
		for _, p := range pages {
			got, err := b.FindRecords(t.Context(), r, w1.ID, store.RecordQuery{Limit: p.limit, Offset: p.offset})
			must(t, err, "FindRecords")
			lo, hi := min(p.offset, len(wantAll)), min(p.offset+p.limit, len(wantAll))
			wantIDs(t, fmt.Sprintf("FindRecords(limit %d, offset %d)", p.limit, p.offset), recordIDs(got), wantAll[lo:hi])
		}

		got, err = b.FindRecords(t.Context(), r, store.NewID(), store.RecordQuery{Limit: 100})
		must(t, err, "FindRecords of an empty workspace")
		if len(got) != 0 {
			t.Errorf("FindRecords of an empty workspace returned %d records", len(got))
		}
	})

	s.test(t, "ConcurrentInserts", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		const workers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for g := range workers {
			wg.Go(func() {
				for i := range each {
					rec := newRecord(r, w.ID, minimalFields(r, i), at(time.Duration(g*each+i)*time.Millisecond))
					errs <- b.InsertRecord(t.Context(), rec)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err, "InsertRecord")
		}
		got, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Limit: 100})
		must(t, err, "FindRecords")
		if len(got) != workers*each {
			t.Errorf("FindRecords returned %d records after %d concurrent inserts", len(got), workers*each)
		}
	})
}
