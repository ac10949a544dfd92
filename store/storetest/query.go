package storetest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// sortedIDPool returns n fresh ids in ascending order, so that a test can
// place a record's id before or after another's.
func sortedIDPool(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = store.NewID()
	}
	slices.Sort(ids)
	return ids
}

// sortKey returns the time a record is sorted by.
func sortKey(rec *store.Record, by string) time.Time {
	if by == store.SortUpdatedAt {
		return rec.UpdatedAt
	}
	return rec.CreatedAt
}

// compareIn compares two records in the order of a RecordQuery: the sort
// key, then the id, both in the query's direction.
func compareIn(by string, asc bool) func(a, b *store.Record) int {
	return func(a, b *store.Record) int {
		c := sortKey(a, by).Compare(sortKey(b, by))
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if !asc {
			c = -c
		}
		return c
	}
}

// expected sorts recs as q orders them and keeps those strictly after q.After,
// up to q.Limit (0: all). Only the ordering fields of q are used.
func expected(recs []*store.Record, q store.RecordQuery) []string {
	sorted := slices.Clone(recs)
	order := compareIn(q.Sort, q.Ascending)
	slices.SortFunc(sorted, order)
	var out []string
	for _, r := range sorted {
		if q.After != nil {
			pos := &store.Record{ID: q.After.ID, CreatedAt: q.After.Time, UpdatedAt: q.After.Time}
			if order(r, pos) <= 0 {
				continue
			}
		}
		out = append(out, r.ID)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// positionOf is the keyset position of rec in a list sorted by by.
func positionOf(rec *store.Record, by string) *store.Position {
	return &store.Position{Time: sortKey(rec, by), ID: rec.ID}
}

// pageThrough lists everything q selects, limit records at a time, each page
// starting after the last record of the previous one. It stops after
// maxPages pages.
func pageThrough(t *testing.T, b store.Backend, r *store.Resource, ws string, q store.RecordQuery, limit, maxPages int) []string {
	t.Helper()
	var ids []string
	q.Limit = limit
	q.After = nil
	for range maxPages {
		page, err := b.FindRecords(t.Context(), r, ws, q)
		must(t, err, "FindRecords")
		ids = append(ids, recordIDs(page)...)
		if len(page) < limit {
			return ids
		}
		q.After = positionOf(page[len(page)-1], q.Sort)
	}
	t.Fatalf("paging with limit %d did not end after %d pages", limit, maxPages)
	return nil
}

var sortOrders = []struct {
	by  string
	asc bool
}{
	{store.SortCreatedAt, false}, {store.SortCreatedAt, true}, {store.SortUpdatedAt, false}, {store.SortUpdatedAt, true},
}

func orderName(by string, asc bool) string {
	if asc {
		return by
	}
	return "-" + by
}

func (s *suite) queries(t *testing.T) {
	s.test(t, "SortOrders", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		other := newWorkspace(t, b, "other", at(0))
		// created_at and updated_at both have ties, in different groups, and
		// ids are handed out in an order unrelated to either.
		created := []time.Duration{5, 1, 3, 3, 3, 2, 5, 4, 0, 3}
		updated := []time.Duration{1, 9, 9, 2, 7, 7, 7, 3, 8, 0}
		pool := sortedIDPool(len(created))
		perm := rand.New(rand.NewPCG(3, 4)).Perm(len(pool))
		var recs []*store.Record
		for i := range created {
			rec := newRecord(store.Deals, w.ID, minimalFields(store.Deals, i), at(created[i]*time.Second))
			rec.ID = pool[perm[i]]
			rec.UpdatedAt = at(updated[i]*time.Second + time.Hour)
			must(t, b.InsertRecord(t.Context(), rec), "InsertRecord")
			recs = append(recs, rec)
			insertRecord(t, b, store.Deals, other.ID, minimalFields(store.Deals, i), rec.CreatedAt)
		}
		for _, o := range sortOrders {
			name := orderName(o.by, o.asc)
			q := store.RecordQuery{Sort: o.by, Ascending: o.asc}
			want := expected(recs, q)

			q.Limit = 100
			got, err := b.FindRecords(t.Context(), store.Deals, w.ID, q)
			must(t, err, "FindRecords")
			wantIDs(t, name, recordIDs(got), want)

			for _, limit := range []int{1, 3, 4, 10} {
				wantIDs(t, fmt.Sprintf("%s paged by %d with After", name, limit),
					pageThrough(t, b, store.Deals, w.ID, q, limit, len(recs)+2), want)
			}
			q.Limit, q.Offset = 3, 2
			got, err = b.FindRecords(t.Context(), store.Deals, w.ID, q)
			must(t, err, "FindRecords")
			wantIDs(t, name+" limit 3 offset 2", recordIDs(got), want[2:5])

			// After a position that is no record's: strictly after it in
			// this order, ties broken by id.
			for _, rec := range recs {
				pos := positionOf(rec, o.by)
				pos.ID = "00000000-0000-0000-0000-000000000000" // ordered before every record's id
				q := store.RecordQuery{Sort: o.by, Ascending: o.asc, After: pos, Limit: 100}
				got, err := b.FindRecords(t.Context(), store.Deals, w.ID, q)
				must(t, err, "FindRecords")
				wantIDs(t, fmt.Sprintf("%s after (%v, smallest id)", name, pos.Time), recordIDs(got), expected(recs, q))
			}
		}
	})

	s.test(t, "KeysetStableUnderInserts", func(t *testing.T, b store.Backend) {
		for _, o := range sortOrders {
			t.Run(orderName(o.by, o.asc), func(t *testing.T) {
				w := newWorkspace(t, b, "w "+orderName(o.by, o.asc), at(0))
				pool := sortedIDPool(200)
				// Records take even slots of the pool; odd slots are kept for
				// records inserted right next to a cursor.
				taken := map[string]bool{}
				next := 0
				free := func() string {
					for taken[pool[next]] {
						next += 2
					}
					return pool[next]
				}
				add := func(id string, tm time.Time) *store.Record {
					rec := newRecord(store.Leads, w.ID, minimalFields(store.Leads, next), tm)
					rec.ID = id
					rec.UpdatedAt = tm
					must(t, b.InsertRecord(t.Context(), rec), "InsertRecord")
					taken[id] = true
					return rec
				}
				var recs []*store.Record
				for i := range 15 {
					recs = append(recs, add(free(), at(time.Duration(10+i/3)*time.Second)))
				}
				initial := recordIDs(recs)
				q := store.RecordQuery{Sort: o.by, Ascending: o.asc, Limit: 4}
				seen := map[string]int{}
				for page := 0; ; page++ {
					if page > 20 {
						t.Fatal("paging did not end")
					}
					want := expected(recs, q)
					got, err := b.FindRecords(t.Context(), store.Leads, w.ID, q)
					must(t, err, "FindRecords")
					wantIDs(t, fmt.Sprintf("page %d", page), recordIDs(got), want)
					for _, rec := range got {
						seen[rec.ID]++
					}
					if len(got) < q.Limit {
						break
					}
					last := got[len(got)-1]
					q.After = positionOf(last, o.by)
					// Between pages, others insert: at the cursor's own time
					// with ids on both sides of it, before everything and
					// after everything.
					i := slices.Index(pool, last.ID)
					for _, j := range []int{i - 1, i + 1} {
						if j >= 0 && j < len(pool) && !taken[pool[j]] {
							recs = append(recs, add(pool[j], q.After.Time))
						}
					}
					recs = append(recs, add(free(), at(time.Hour+time.Duration(page)*time.Second)))
					recs = append(recs, add(free(), at(time.Duration(page)*time.Millisecond)))
				}
				for id, n := range seen {
					if n > 1 {
						t.Errorf("record %s was listed %d times", id, n)
					}
				}
				for _, id := range initial {
					if seen[id] != 1 {
						t.Errorf("record %s, there from the start, was listed %d times, want once", id, seen[id])
					}
				}
			})
		}
	})

	s.test(t, "TimeBounds", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		var recs []*store.Record
		for i := 1; i <= 6; i++ {
			rec := newRecord(store.Notes, w.ID, minimalFields(store.Notes, i), at(time.Duration(i)*time.Second))
			rec.UpdatedAt = at(time.Duration(7-i)*time.Second + time.Minute)
			must(t, b.InsertRecord(t.Context(), rec), "InsertRecord")
			recs = append(recs, rec)
		}
		sec := func(n int) time.Time { return at(time.Duration(n) * time.Second) }
		upd := func(n int) time.Time { return at(time.Duration(n)*time.Second + time.Minute) }
		cases := []struct {
			name string
			q    store.RecordQuery
			keep func(r *store.Record) bool
		}{
			{"created after 2s", store.RecordQuery{CreatedAfter: sec(2)}, func(r *store.Record) bool { return r.CreatedAt.After(sec(2)) }},
			{"created before 4s", store.RecordQuery{CreatedBefore: sec(4)}, func(r *store.Record) bool { return r.CreatedAt.Before(sec(4)) }},
			{"created between 2s and 5s", store.RecordQuery{CreatedAfter: sec(2), CreatedBefore: sec(5)},
				func(r *store.Record) bool { return r.CreatedAt.After(sec(2)) && r.CreatedAt.Before(sec(5)) }},
			{"created a millisecond around 3s", store.RecordQuery{CreatedAfter: sec(3).Add(-time.Millisecond), CreatedBefore: sec(3).Add(time.Millisecond)},
				func(r *store.Record) bool { return r.CreatedAt.Equal(sec(3)) }},
			{"created between 3s and 3s", store.RecordQuery{CreatedAfter: sec(3), CreatedBefore: sec(3)}, func(*store.Record) bool { return false }},
			{"updated after 2s", store.RecordQuery{UpdatedAfter: upd(2)}, func(r *store.Record) bool { return r.UpdatedAt.After(upd(2)) }},
			{"updated before 4s", store.RecordQuery{UpdatedBefore: upd(4)}, func(r *store.Record) bool { return r.UpdatedAt.Before(upd(4)) }},
			{"updated between 1s and 6s", store.RecordQuery{UpdatedAfter: upd(1), UpdatedBefore: upd(6)},
				func(r *store.Record) bool { return r.UpdatedAt.After(upd(1)) && r.UpdatedAt.Before(upd(6)) }},
			{"created after 1s, updated before 5s", store.RecordQuery{CreatedAfter: sec(1), UpdatedBefore: upd(5)},
				func(r *store.Record) bool { return r.CreatedAt.After(sec(1)) && r.UpdatedAt.Before(upd(5)) }},
		}
		for _, c := range cases {
			var keep []*store.Record
			for _, r := range recs {
				if c.keep(r) {
					keep = append(keep, r)
				}
			}
			for _, o := range sortOrders {
				q := c.q
				q.Sort, q.Ascending, q.Limit = o.by, o.asc, 100
				got, err := b.FindRecords(t.Context(), store.Notes, w.ID, q)
				must(t, err, "FindRecords")
				wantIDs(t, c.name+", "+orderName(o.by, o.asc), recordIDs(got), expected(keep, q))
				wantIDs(t, c.name+", "+orderName(o.by, o.asc)+", paged",
					pageThrough(t, b, store.Notes, w.ID, q, 2, len(recs)+2), expected(keep, q))
			}
		}
	})

	s.test(t, "Filters", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		other := newWorkspace(t, b, "other", at(0))
		accA, accB := store.NewID(), store.NewID()
		deals := []map[string]any{
			{"name": "d0", "stage": "Won", "currency": "EUR", "account_id": accA, "external_id": "crm-1"},
			{"name": "d1", "stage": "Won", "currency": "USD", "account_id": accB},
			{"name": "d2", "stage": "won", "currency": "EUR"},
			{"name": "d3", "stage": "Lost", "currency": "EUR", "account_id": accA, "value": 10.0},
			{"name": "d4", "stage": `{"$gt":""}`, "currency": "JPY", "external_id": "crm-2"},
			{"name": "d5", "currency": "USD", "account_id": accA},
			{"name": "d6", "stage": "Won ", "currency": "EUR"},
		}
		var recs []*store.Record
		for i, f := range deals {
			recs = append(recs, insertRecord(t, b, store.Deals, w.ID, f, at(time.Duration(i)*time.Second)))
			// The same values in another workspace never match.
			insertRecord(t, b, store.Deals, other.ID, f, at(time.Duration(i)*time.Second))
		}
		ids := func(idx ...int) []*store.Record {
			var out []*store.Record
			for _, i := range idx {
				out = append(out, recs[i])
			}
			return out
		}
		type ff = store.FieldFilter
		cases := []struct {
			name    string
			filters []store.FieldFilter
			want    []*store.Record
		}{
			{"stage", []ff{{Field: "stage", Value: "Won"}}, ids(0, 1)},
			{"stage is case-sensitive", []ff{{Field: "stage", Value: "won"}}, ids(2)},
			{"stage with an operator's text", []ff{{Field: "stage", Value: `{"$gt":""}`}}, ids(4)},
			{"no stage matches a prefix", []ff{{Field: "stage", Value: "Wo"}}, nil},
			{"currency", []ff{{Field: "currency", Value: "EUR"}}, ids(0, 2, 3, 6)},
			{"reference", []ff{{Field: "account_id", Value: accA}}, ids(0, 3, 5)},
			{"reference and currency", []ff{{Field: "account_id", Value: accA}, {Field: "currency", Value: "EUR"}}, ids(0, 3)},
			{"three filters", []ff{{Field: "account_id", Value: accA}, {Field: "currency", Value: "EUR"}, {Field: "stage", Value: "Lost"}}, ids(3)},
			{"contradicting filters", []ff{{Field: "stage", Value: "Won"}, {Field: "stage", Value: "Lost"}}, nil},
			{"external id", []ff{{Field: "external_id", Value: "crm-2"}}, ids(4)},
			{"unknown reference", []ff{{Field: "account_id", Value: store.NewID()}}, nil},
			{"regex text", []ff{{Field: "stage", Value: ".*"}}, nil},
		}
		for _, c := range cases {
			for _, o := range sortOrders {
				q := store.RecordQuery{Sort: o.by, Ascending: o.asc, Limit: 100, Filters: c.filters}
				got, err := b.FindRecords(t.Context(), store.Deals, w.ID, q)
				must(t, err, "FindRecords")
				wantIDs(t, c.name+", "+orderName(o.by, o.asc), recordIDs(got), expected(c.want, q))
			}
			q := store.RecordQuery{Sort: store.SortCreatedAt, Limit: 100, Filters: c.filters}
			wantIDs(t, c.name+", paged", pageThrough(t, b, store.Deals, w.ID, q, 1, len(recs)+2), expected(c.want, q))
		}
		q := store.RecordQuery{Sort: store.SortCreatedAt, Limit: 1, Offset: 1, Filters: []ff{{Field: "currency", Value: "EUR"}}}
		got, err := b.FindRecords(t.Context(), store.Deals, w.ID, q)
		must(t, err, "FindRecords")
		wantIDs(t, "currency EUR, limit 1 offset 1", recordIDs(got), []string{recs[3].ID})

		// Activities: an enum and each related_* reference.
		contact, lead := store.NewID(), store.NewID()
		acts := []*store.Record{
			insertRecord(t, b, store.Activities, w.ID, map[string]any{"type": "Call", "title": "a0", "related_contact_id": contact}, at(time.Second)),
			insertRecord(t, b, store.Activities, w.ID, map[string]any{"type": "Email", "title": "a1", "related_contact_id": contact, "related_lead_id": lead}, at(2*time.Second)),
			insertRecord(t, b, store.Activities, w.ID, map[string]any{"type": "Call", "title": "a2", "related_lead_id": lead, "related_account_id": accA}, at(3*time.Second)),
		}
		acases := []struct {
			filters []store.FieldFilter
			want    []*store.Record
		}{
			{[]ff{{Field: "type", Value: "Call"}}, []*store.Record{acts[2], acts[0]}},
			{[]ff{{Field: "related_contact_id", Value: contact}}, []*store.Record{acts[1], acts[0]}},
			{[]ff{{Field: "related_lead_id", Value: lead}, {Field: "type", Value: "Call"}}, []*store.Record{acts[2]}},
			{[]ff{{Field: "related_account_id", Value: accA}}, []*store.Record{acts[2]}},
			{[]ff{{Field: "related_opportunity_id", Value: recs[0].ID}}, nil},
		}
		for _, c := range acases {
			got, err := b.FindRecords(t.Context(), store.Activities, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 100, Filters: c.filters})
			must(t, err, "FindRecords")
			wantIDs(t, fmt.Sprintf("activities %+v", c.filters), recordIDs(got), recordIDs(c.want))
		}
	})

	s.test(t, "Search", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		names := []string{
			"Acme 100% Pure",               // 0
			"a_b Trading",                  // 1
			"axb Trading",                  // 2
			`Back\slash Ltd`,               // 3
			"Regex .* Star",                // 4
			"Evil (a+)+$ Inc",              // 5
			"ZOË ÜNÏCØDÉ GmbH",             // 6
			"plain acme",                   // 7
			"100 Percent",                  // 8
			"[brackets]^ {x}|?",            // 9
			strings.Repeat("a", 100) + "!", // 10: the kind of text a backtracking pattern chokes on
			"It's \"quoted\" -- ; DROP",    // 11
		}
		var recs []*store.Record
		for i, n := range names {
			// Only name is searched: the other fields hold every term.
			f := map[string]any{"name": n, "industry": "acme % _ \\ .* (a+)+$ zoë", "country": "Trading"}
			recs = append(recs, insertRecord(t, b, store.Accounts, w.ID, f, at(time.Duration(i)*time.Second)))
		}
		other := newWorkspace(t, b, "other", at(0))
		insertRecord(t, b, store.Accounts, other.ID, map[string]any{"name": "Acme elsewhere"}, at(0))

		idx := func(is ...int) []*store.Record {
			var out []*store.Record
			for _, i := range is {
				out = append(out, recs[i])
			}
			return out
		}
		cases := []struct {
			search string
			want   []*store.Record
		}{
			{"acme", idx(0, 7)},
			{"ACME", idx(0, 7)},
			{"AcMe 100", idx(0)},
			{"%", idx(0)},
			{"100%", idx(0)},
			{"_", idx(1)},
			{"a_b", idx(1)},
			{`\`, idx(3)},
			{`k\s`, idx(3)},
			{".*", idx(4)},
			{".", idx(4)},
			{"(a+)+$", idx(5)},
			{"a+", idx(5)},
			{"zoë ünïcødé", idx(6)},
			{"Ünï", idx(6)},
			{"[brackets]^", idx(9)},
			{"{x}|?", idx(9)},
			{"|", idx(9)},
			{"$", idx(5)},
			{"^", idx(9)},
			{strings.Repeat("a", 30), idx(10)},
			{`"quoted" -- ;`, idx(11)},
			{"'", idx(11)},
			{"trading", idx(1, 2)},
			{"nothing like it", nil},
			{"elsewhere", nil},
		}
		for _, c := range cases {
			q := store.RecordQuery{Sort: store.SortCreatedAt, Limit: 100, Search: c.search}
			got, err := b.FindRecords(t.Context(), store.Accounts, w.ID, q)
			must(t, err, "FindRecords")
			wantIDs(t, fmt.Sprintf("search %q", c.search), recordIDs(got), expected(c.want, q))
		}

		// Search combines with filters, order, time bounds and keyset paging.
		q := store.RecordQuery{Sort: store.SortCreatedAt, Ascending: true, Limit: 100, Search: "a",
			Filters: []store.FieldFilter{{Field: "country", Value: "Trading"}}, CreatedAfter: at(0)}
		var want []*store.Record
		for _, r := range recs[1:] {
			if strings.Contains(strings.ToLower(r.Fields["name"].(string)), "a") {
				want = append(want, r)
			}
		}
		got, err := b.FindRecords(t.Context(), store.Accounts, w.ID, q)
		must(t, err, "FindRecords")
		wantIDs(t, "search with filter and bounds", recordIDs(got), expected(want, q))
		wantIDs(t, "search paged", pageThrough(t, b, store.Accounts, w.ID, q, 2, len(recs)+2), expected(want, q))

		// Contacts are searched by first and last name.
		c1 := insertRecord(t, b, store.Contacts, w.ID, map[string]any{"first_name": "Ada", "last_name": "Lovelace", "title": "Countess"}, at(time.Second))
		c2 := insertRecord(t, b, store.Contacts, w.ID, map[string]any{"last_name": "Adams"}, at(2*time.Second))
		c3 := insertRecord(t, b, store.Contacts, w.ID, map[string]any{"first_name": "Grace", "title": "Ada expert"}, at(3*time.Second))
		for _, c := range []struct {
			search string
			want   []*store.Record
		}{
			{"ada", []*store.Record{c2, c1}},
			{"LOVE", []*store.Record{c1}},
			{"grace", []*store.Record{c3}},
			{"countess", nil},
		} {
			got, err := b.FindRecords(t.Context(), store.Contacts, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, Search: c.search})
			must(t, err, "FindRecords")
			wantIDs(t, fmt.Sprintf("contacts search %q", c.search), recordIDs(got), recordIDs(c.want))
		}

		// Activities and notes are searched by title.
		a := insertRecord(t, b, store.Activities, w.ID, map[string]any{"type": "Call", "title": "Call Ada", "description": "about acme"}, at(time.Second))
		n := insertRecord(t, b, store.Notes, w.ID, map[string]any{"title": "Acme notes", "content": "ada"}, at(time.Second))
		got, err = b.FindRecords(t.Context(), store.Activities, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, Search: "ada"})
		must(t, err, "FindRecords")
		wantIDs(t, "activities search", recordIDs(got), []string{a.ID})
		got, err = b.FindRecords(t.Context(), store.Notes, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, Search: "ada"})
		must(t, err, "FindRecords")
		wantIDs(t, "notes search by title only", recordIDs(got), nil)
		got, err = b.FindRecords(t.Context(), store.Notes, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, Search: "ACME"})
		must(t, err, "FindRecords")
		wantIDs(t, "notes search", recordIDs(got), []string{n.ID})
	})

	s.test(t, "IncludeDeleted", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		var recs []*store.Record
		for i := range 6 {
			f := minimalFields(store.Leads, i)
			f["status"] = []string{"New", "Lost"}[i%2]
			recs = append(recs, insertRecord(t, b, store.Leads, w.ID, f, at(time.Duration(i)*time.Second)))
		}
		deletedAt := at(time.Hour)
		for _, i := range []int{1, 4} {
			must(t, b.DeleteRecord(t.Context(), store.Leads, w.ID, recs[i].ID, deletedAt), "DeleteRecord")
			recs[i].DeletedAt = ptr(deletedAt)
			recs[i].UpdatedAt = deletedAt
		}
		live := []*store.Record{recs[0], recs[2], recs[3], recs[5]}
		for _, o := range sortOrders {
			q := store.RecordQuery{Sort: o.by, Ascending: o.asc, Limit: 100}
			got, err := b.FindRecords(t.Context(), store.Leads, w.ID, q)
			must(t, err, "FindRecords")
			wantIDs(t, "live, "+orderName(o.by, o.asc), recordIDs(got), expected(live, q))
			for _, rec := range got {
				if rec.DeletedAt != nil {
					t.Errorf("live record %s has deleted_at %v", rec.ID, rec.DeletedAt)
				}
			}
			q.IncludeDeleted = true
			got, err = b.FindRecords(t.Context(), store.Leads, w.ID, q)
			must(t, err, "FindRecords")
			wantIDs(t, "with tombstones, "+orderName(o.by, o.asc), recordIDs(got), expected(recs, q))
			byID := map[string]*store.Record{}
			for _, rec := range recs {
				byID[rec.ID] = rec
			}
			for _, rec := range got {
				want := byID[rec.ID]
				wantRecord(t, rec, want)
				wantTimePtr(t, "deleted_at of "+rec.ID, rec.DeletedAt, want.DeletedAt)
			}
			wantIDs(t, "with tombstones paged, "+orderName(o.by, o.asc),
				pageThrough(t, b, store.Leads, w.ID, q, 2, 10), expected(recs, q))
		}
		// Filters and bounds apply to tombstones too: a sync client asks for
		// what changed since its last poll.
		q := store.RecordQuery{Sort: store.SortUpdatedAt, Ascending: true, Limit: 100, IncludeDeleted: true,
			UpdatedAfter: at(30 * time.Minute), Filters: []store.FieldFilter{{Field: "status", Value: "Lost"}}}
		got, err := b.FindRecords(t.Context(), store.Leads, w.ID, q)
		must(t, err, "FindRecords")
		wantIDs(t, "tombstones changed since", recordIDs(got), expected([]*store.Record{recs[1]}, q))
	})

	s.test(t, "PurgeTombstones", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		type rec struct {
			r    *store.Resource
			ws   string
			del  time.Duration // -1: live
			keep bool
		}
		cutoff := at(10 * time.Hour)
		plan := []rec{
			{store.Accounts, w1.ID, time.Hour, false},
			{store.Accounts, w1.ID, 10*time.Hour - time.Millisecond, false},
			{store.Accounts, w1.ID, 10 * time.Hour, true}, // exactly at the cutoff: not before it
			{store.Accounts, w1.ID, 11 * time.Hour, true},
			{store.Accounts, w1.ID, -1, true},
			{store.Notes, w2.ID, 2 * time.Hour, false},
			{store.Notes, w2.ID, -1, true},
			{store.Deals, w2.ID, 12 * time.Hour, true},
			{store.Deals, w1.ID, 3 * time.Hour, false},
		}
		var recs []*store.Record
		for i, p := range plan {
			r := insertRecord(t, b, p.r, p.ws, minimalFields(p.r, i), at(time.Duration(i)*time.Millisecond))
			if p.del >= 0 {
				must(t, b.DeleteRecord(t.Context(), p.r, p.ws, r.ID, at(p.del)), "DeleteRecord")
			}
			recs = append(recs, r)
		}
		n, err := b.PurgeTombstones(t.Context(), cutoff)
		must(t, err, "PurgeTombstones")
		if n != 4 {
			t.Errorf("PurgeTombstones removed %d tombstones, want 4", n)
		}
		for i, p := range plan {
			got, err := b.FindRecords(t.Context(), p.r, p.ws, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 100, IncludeDeleted: true})
			must(t, err, "FindRecords")
			found := slices.Contains(recordIDs(got), recs[i].ID)
			if found != p.keep {
				t.Errorf("record %d (%s, deleted %v): still there = %v, want %v", i, p.r.Name, p.del, found, p.keep)
			}
		}
		n, err = b.PurgeTombstones(t.Context(), cutoff)
		must(t, err, "PurgeTombstones again")
		if n != 0 {
			t.Errorf("a second PurgeTombstones removed %d tombstones, want 0", n)
		}
	})

	s.test(t, "ExternalIDUpdateConflict", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		for i, r := range store.Resources {
			f1, f2 := minimalFields(r, i), minimalFields(r, i+1)
			f1[store.ExternalIDField], f2[store.ExternalIDField] = "ext-1", "ext-2"
			r1 := insertRecord(t, b, r, w.ID, f1, at(time.Second))
			r2 := insertRecord(t, b, r, w.ID, f2, at(2*time.Second))
			upd := *r2
			upd.Fields = minimalFields(r, i+1)
			upd.Fields[store.ExternalIDField] = "ext-1"
			upd.UpdatedAt = at(time.Hour)
			err := b.UpdateRecord(t.Context(), &upd, r2.UpdatedAt)
			got := wantCode(t, err, store.ECONFLICT)
			if got == store.ErrStale {
				t.Errorf("%s: an external id taken by another record is reported as a stale update", r.Name)
			}
			for _, want := range []*store.Record{r1, r2} {
				cur, err := b.FindRecordByID(t.Context(), r, w.ID, want.ID)
				must(t, err, "FindRecordByID")
				wantRecord(t, cur, want)
			}
			// Once r1 is deleted, its external id is free for r2.
			must(t, b.DeleteRecord(t.Context(), r, w.ID, r1.ID, at(3*time.Second)), "DeleteRecord")
			must(t, b.UpdateRecord(t.Context(), &upd, r2.UpdatedAt), "UpdateRecord to a deleted record's external id")
			cur, err := b.FindRecordByExternalID(t.Context(), r, w.ID, "ext-1")
			must(t, err, "FindRecordByExternalID")
			wantRecord(t, cur, &upd)
		}
	})
}
