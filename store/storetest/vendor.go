package storetest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// vendorEnv is a workspace with a vendor key (leads with source
// "Vendor XYZ"), another vendor's key, and leads of each kind.
type vendorEnv struct {
	*env
	full, fullB *store.Scoped // every scope, in workspace A and B
	v, other    *store.Scoped // Vendor XYZ and Vendor ABC, read and write leads
	// mine is Vendor XYZ's lead; theirs is Vendor ABC's; house has no
	// source; away is a Vendor XYZ lead in workspace B with mine's
	// external id.
	mine, theirs, house, away *store.Record
}

const vendorSource = "Vendor XYZ"

var vendorFilter = map[string]string{"source": vendorSource}

func newVendorEnv(t *testing.T, b store.Backend) *vendorEnv {
	t.Helper()
	e := &vendorEnv{env: newEnv(t, b)}
	e.full, e.fullB = e.all(t, e.wa), e.all(t, e.wb)
	e.v = e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor XYZ",
		Scopes: scopes("read:leads", "write:leads"), Filter: vendorFilter}).p)
	e.other = e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Name: "Vendor ABC",
		Scopes: scopes("read:leads", "write:leads"), Filter: map[string]string{"source": "Vendor ABC"}}).p)
	create := func(sc *store.Scoped, in map[string]any) *store.Record {
		t.Helper()
		e.clock.Add(time.Second)
		rec, err := sc.CreateRecord(t.Context(), store.Leads, in)
		must(t, err, "CreateRecord")
		return rec
	}
	e.mine = create(e.full, map[string]any{"name": "Mine", "source": vendorSource, "status": "New", "external_id": "ext-mine"})
	e.theirs = create(e.full, map[string]any{"name": "Theirs", "source": "Vendor ABC", "status": "New", "external_id": "ext-theirs"})
	e.house = create(e.full, map[string]any{"name": "House", "status": "New", "external_id": "ext-house"})
	e.away = create(e.fullB, map[string]any{"name": "Away", "source": vendorSource, "status": "New", "external_id": "ext-mine"})
	e.clock.Add(time.Second)
	return e
}

func (e *vendorEnv) hidden() []*store.Record { return []*store.Record{e.theirs, e.house, e.away} }

// unchanged fails the test unless rec is stored exactly as it was.
func (e *vendorEnv) unchanged(t *testing.T, rec *store.Record) {
	t.Helper()
	sc := e.full
	if rec.WorkspaceID == e.wb.ID {
		sc = e.fullB
	}
	got, err := sc.FindRecordByID(t.Context(), store.Leads, rec.ID)
	must(t, err, "FindRecordByID")
	wantRecord(t, got, rec)
}

func wantSource(t *testing.T, what string, rec *store.Record, want string) {
	t.Helper()
	if rec == nil {
		t.Errorf("%s: no record", what)
		return
	}
	if got := rec.Fields["source"]; got != want {
		t.Errorf("%s: source = %#v, want %q", what, got, want)
	}
}

func (s *suite) vendorKeys(t *testing.T) {
	s.test(t, "List", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		wantIDs(t, "vendor's leads", recordIDs(listAll(t, e.v, store.Leads, store.ListParams{})), []string{e.mine.ID})
		wantIDs(t, "other vendor's leads", recordIDs(listAll(t, e.other, store.Leads, store.ListParams{})), []string{e.theirs.ID})
		if n := len(listAll(t, e.full, store.Leads, store.ListParams{})); n != 3 {
			t.Errorf("the workspace has %d leads, want 3", n)
		}
		// The client's own filters and search narrow further, never widen.
		for _, lp := range []store.ListParams{
			{Filters: map[string]string{"source": "Vendor ABC"}},
			{Filters: map[string]string{"status": "New", "source": "Vendor ABC"}},
			{Q: "theirs"},
			{Q: "house"},
			{Sort: "updated_at", Q: "a"},
		} {
			if got := listAll(t, e.v, store.Leads, lp); len(got) != 0 {
				t.Errorf("vendor's leads with %+v: %q, want none", lp, recordIDs(got))
			}
		}
		wantIDs(t, "vendor's new leads", recordIDs(listAll(t, e.v, store.Leads, store.ListParams{Filters: map[string]string{"status": "New"}})),
			[]string{e.mine.ID})

		// Keyset pages stay within the filter.
		second, err := e.full.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Mine too", "source": vendorSource})
		must(t, err, "CreateRecord")
		e.clock.Add(time.Second)
		_, err = e.full.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Not mine"})
		must(t, err, "CreateRecord")
		var seen []string
		lp := store.ListParams{Limit: 1, Sort: "created_at"}
		for range 5 {
			page, err := e.v.FindRecords(t.Context(), store.Leads, lp)
			must(t, err, "FindRecords")
			seen = append(seen, recordIDs(page.Data)...)
			if page.Pagination.NextCursor == nil {
				break
			}
			lp.Cursor = *page.Pagination.NextCursor
		}
		wantIDs(t, "vendor's leads page by page", seen, []string{e.mine.ID, second.ID})
		page, err := e.v.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 10, Offset: 1, Sort: "created_at"})
		must(t, err, "FindRecords with offset")
		wantIDs(t, "vendor's leads from offset 1", recordIDs(page.Data), []string{second.ID})
	})

	s.test(t, "IncludeDeletedHidesOthersTombstones", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		must(t, e.full.DeleteRecord(t.Context(), store.Leads, e.theirs.ID), "DeleteRecord(theirs)")
		must(t, e.full.DeleteRecord(t.Context(), store.Leads, e.house.ID), "DeleteRecord(house)")
		must(t, e.fullB.DeleteRecord(t.Context(), store.Leads, e.away.ID), "DeleteRecord(away)")
		must(t, e.v.DeleteRecord(t.Context(), store.Leads, e.mine.ID), "DeleteRecord(mine)")
		got := listAll(t, e.v, store.Leads, store.ListParams{IncludeDeleted: true})
		wantIDs(t, "vendor's leads with tombstones", recordIDs(got), []string{e.mine.ID})
		if len(got) == 1 && got[0].DeletedAt == nil {
			t.Error("the vendor's deleted lead is listed without deleted_at")
		}
		if got := listAll(t, e.v, store.Leads, store.ListParams{}); len(got) != 0 {
			t.Errorf("vendor's live leads after deleting: %q, want none", recordIDs(got))
		}
		if n := len(listAll(t, e.full, store.Leads, store.ListParams{IncludeDeleted: true})); n != 3 {
			t.Errorf("the workspace lists %d tombstones, want 3", n)
		}
	})

	s.test(t, "Get", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		got, err := e.v.FindRecordByID(t.Context(), store.Leads, e.mine.ID)
		must(t, err, "FindRecordByID(mine)")
		wantRecord(t, got, e.mine)
		_, err = e.v.FindRecordByID(t.Context(), store.Leads, store.NewID())
		absent := wantCode(t, err, store.ENOTFOUND)
		for _, rec := range e.hidden() {
			_, err := e.v.FindRecordByID(t.Context(), store.Leads, rec.ID)
			// Exactly like a lead that does not exist.
			if got := wantCode(t, err, store.ENOTFOUND); got.Message != absent.Message {
				t.Errorf("hidden lead %s: message %q, want %q", rec.Fields["name"], got.Message, absent.Message)
			}
		}
	})

	s.test(t, "CreateStamped", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		for _, in := range []map[string]any{
			{"name": "No source"},
			{"name": "Same source", "source": vendorSource},
			{"name": "Spaced source", "source": "  " + vendorSource + " "},
			{"name": "Null source", "source": nil},
			{"name": "Empty source", "source": ""},
		} {
			rec, err := e.v.CreateRecord(t.Context(), store.Leads, in)
			must(t, err, "CreateRecord "+in["name"].(string))
			wantSource(t, in["name"].(string), rec, vendorSource)
			stored, err := e.full.FindRecordByID(t.Context(), store.Leads, rec.ID)
			must(t, err, "FindRecordByID")
			wantSource(t, "stored "+in["name"].(string), stored, vendorSource)
		}
		for _, src := range []any{"Vendor ABC", "vendor xyz", "Vendor XYZ2"} {
			_, err := e.v.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Conflict", "source": src})
			wantField(t, err, store.EBADREQUEST, "source", "create with source "+src.(string))
		}
		_, err := e.v.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "Number", "source": 42})
		wantCode(t, err, store.EBADREQUEST)
		if n := len(listAll(t, e.full, store.Leads, store.ListParams{})); n != 3+5 {
			t.Errorf("the workspace has %d leads, want 8", n)
		}
		if n := len(listAll(t, e.v, store.Leads, store.ListParams{})); n != 1+5 {
			t.Errorf("the vendor sees %d leads, want 6", n)
		}
		// Another vendor's creations are stamped with its own source and
		// invisible to this vendor.
		rec, err := e.other.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "From ABC"})
		must(t, err, "CreateRecord(other vendor)")
		wantSource(t, "other vendor's lead", rec, "Vendor ABC")
		_, err = e.v.FindRecordByID(t.Context(), store.Leads, rec.ID)
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "UpdateCannotMoveOut", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		got, err := e.v.UpdateRecord(t.Context(), store.Leads, e.mine.ID, map[string]any{"status": "Contacted"})
		must(t, err, "UpdateRecord")
		wantSource(t, "updated lead", got, vendorSource)
		got, err = e.v.UpdateRecord(t.Context(), store.Leads, e.mine.ID, map[string]any{"source": vendorSource, "company": "Initech"})
		must(t, err, "UpdateRecord with the same source")
		wantSource(t, "updated lead", got, vendorSource)
		for _, src := range []any{"Vendor ABC", nil, "", "  "} {
			_, err := e.v.UpdateRecord(t.Context(), store.Leads, e.mine.ID, map[string]any{"source": src, "status": "Lost"})
			wantField(t, err, store.EBADREQUEST, "source", fmt.Sprintf("update setting source to %#v", src))
		}
		stored, err := e.full.FindRecordByID(t.Context(), store.Leads, e.mine.ID)
		must(t, err, "FindRecordByID")
		wantSource(t, "lead after refused updates", stored, vendorSource)
		if stored.Fields["status"] != "Contacted" {
			t.Errorf("status = %v after refused updates, want Contacted", stored.Fields["status"])
		}
		for _, rec := range e.hidden() {
			_, err := e.v.UpdateRecord(t.Context(), store.Leads, rec.ID, map[string]any{"name": "Taken over"})
			wantCode(t, err, store.ENOTFOUND)
			_, err = e.v.UpdateRecord(t.Context(), store.Leads, rec.ID, map[string]any{"source": vendorSource})
			wantCode(t, err, store.ENOTFOUND)
			e.unchanged(t, rec)
		}
		// The workspace's unfiltered key may still move records between sources.
		got, err = e.full.UpdateRecord(t.Context(), store.Leads, e.mine.ID, map[string]any{"source": "Vendor ABC"})
		must(t, err, "UpdateRecord(full)")
		_, err = e.v.FindRecordByID(t.Context(), store.Leads, got.ID)
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "DeleteHiddenNotFound", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		for _, rec := range e.hidden() {
			wantCode(t, e.v.DeleteRecord(t.Context(), store.Leads, rec.ID), store.ENOTFOUND)
			e.unchanged(t, rec)
		}
		must(t, e.v.DeleteRecord(t.Context(), store.Leads, e.mine.ID), "DeleteRecord(mine)")
		_, err := e.full.FindRecordByID(t.Context(), store.Leads, e.mine.ID)
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "Upsert", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		rec, created, err := e.v.UpsertRecord(t.Context(), store.Leads, "ext-new", map[string]any{"name": "Upserted"})
		must(t, err, "UpsertRecord(new)")
		if !created {
			t.Error("upsert of a new external id did not create")
		}
		wantSource(t, "upserted lead", rec, vendorSource)
		rec, created, err = e.v.UpsertRecord(t.Context(), store.Leads, "ext-mine", map[string]any{"status": "Won"})
		must(t, err, "UpsertRecord(mine)")
		if created || rec.ID != e.mine.ID || rec.Fields["status"] != "Won" {
			t.Errorf("upsert of the vendor's external id: created %v, record %+v; want the vendor's lead updated", created, rec)
		}
		// The external id of a lead the vendor cannot see is taken.
		for _, rec := range []*store.Record{e.theirs, e.house} {
			ext := rec.Fields["external_id"].(string)
			_, _, err := e.v.UpsertRecord(t.Context(), store.Leads, ext, map[string]any{"name": "Hijack"})
			wantField(t, err, store.ECONFLICT, store.ExternalIDField, "upsert onto "+ext)
			_, _, err = e.v.UpsertRecord(t.Context(), store.Leads, ext, map[string]any{"name": "Hijack", "source": vendorSource})
			wantField(t, err, store.ECONFLICT, store.ExternalIDField, "upsert onto "+ext+" with the vendor's source")
			e.unchanged(t, rec)
		}
		_, _, err = e.v.UpsertRecord(t.Context(), store.Leads, "ext-abc", map[string]any{"name": "X", "source": "Vendor ABC"})
		wantField(t, err, store.EBADREQUEST, "source", "upsert creating with another source")
		_, _, err = e.v.UpsertRecord(t.Context(), store.Leads, "ext-mine", map[string]any{"source": "Vendor ABC"})
		wantField(t, err, store.EBADREQUEST, "source", "upsert moving the vendor's lead out")
		_, _, err = e.v.UpsertRecord(t.Context(), store.Leads, "ext-mine", map[string]any{"source": nil})
		wantField(t, err, store.EBADREQUEST, "source", "upsert clearing the source")
		e.unchanged(t, e.away)
		if n := len(listAll(t, e.full, store.Leads, store.ListParams{})); n != 4 {
			t.Errorf("the workspace has %d leads, want 4", n)
		}
	})

	s.test(t, "Batches", func(t *testing.T, b store.Backend) {
		e := newVendorEnv(t, b)
		res, err := e.v.CreateRecords(t.Context(), store.Leads, []map[string]any{
			{"name": "B1"}, {"name": "B2", "source": vendorSource}, {"name": "B3", "source": "Vendor ABC"},
		})
		must(t, err, "CreateRecords")
		if len(res) != 3 {
			t.Fatalf("%d results, want 3", len(res))
		}
		for _, r := range res[:2] {
			must(t, r.Err, "batch item")
			wantSource(t, "batch-created lead", r.Record, vendorSource)
		}
		wantField(t, res[2].Err, store.EBADREQUEST, "source", "batch item with another source")

		res, err = e.v.UpsertRecords(t.Context(), store.Leads, []map[string]any{
			{"external_id": "ext-u1", "name": "U1"},
			{"external_id": "ext-theirs", "name": "Hijack"},
			{"external_id": "ext-mine", "name": "Mine again"},
			{"external_id": "ext-house", "name": "Hijack", "source": vendorSource},
			{"external_id": "ext-u2", "name": "U2", "source": "Vendor ABC"},
		})
		must(t, err, "UpsertRecords")
		if len(res) != 5 {
			t.Fatalf("%d results, want 5", len(res))
		}
		must(t, res[0].Err, "batch upsert of a new external id")
		wantSource(t, "batch-upserted lead", res[0].Record, vendorSource)
		if !res[0].Created {
			t.Error("batch upsert of a new external id did not create")
		}
		wantField(t, res[1].Err, store.ECONFLICT, store.ExternalIDField, "batch upsert onto another vendor's lead")
		must(t, res[2].Err, "batch upsert of the vendor's lead")
		if res[2].Created || res[2].Record.ID != e.mine.ID {
			t.Errorf("batch upsert of ext-mine = %+v, want the vendor's lead updated", res[2])
		}
		wantField(t, res[3].Err, store.ECONFLICT, store.ExternalIDField, "batch upsert onto the workspace's lead")
		wantField(t, res[4].Err, store.EBADREQUEST, "source", "batch upsert with another source")
		e.unchanged(t, e.theirs)
		e.unchanged(t, e.house)
		e.unchanged(t, e.away)
		mine := listAll(t, e.v, store.Leads, store.ListParams{})
		if len(mine) != 4 {
			t.Errorf("the vendor sees %d leads, want 4", len(mine))
		}
		for _, rec := range mine {
			wantSource(t, "vendor's lead", rec, vendorSource)
		}
	})

	s.test(t, "KeyCreationRefusesUnfilterable", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		before, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")
		six := map[string]string{}
		for _, f := range []string{"source", "status", "email", "industry", "country", "stage"} {
			six[f] = "x"
		}
		cases := []struct {
			name   string
			scopes []store.Scope
			filter map[string]string
			field  string
		}{
			{"accounts lack source", scopes("read:leads", "read:accounts"), vendorFilter, "scopes"},
			{"notes lack source", scopes("write:notes"), vendorFilter, "scopes"},
			{"usage covers everything", scopes("read:leads", "read:usage"), vendorFilter, "scopes"},
			{"unknown field", scopes("read:leads"), map[string]string{"nope": "x"}, "filter"},
			{"number field", scopes("read:deals"), map[string]string{"value": "1"}, "filter"},
			{"external id", scopes("read:leads"), map[string]string{"external_id": "x"}, "filter"},
			{"unfilterable field", scopes("read:leads"), map[string]string{"company": "Initech"}, "filter"},
			{"server field", scopes("read:leads"), map[string]string{"workspace_id": "x"}, "filter"},
			{"empty value", scopes("read:leads"), map[string]string{"source": "  "}, "filter"},
			{"bad reference", scopes("read:contacts"), map[string]string{"account_id": "not-an-id"}, "filter"},
			{"too many fields", scopes("read:leads"), six, "filter"},
		}
		for _, c := range cases {
			_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.wa.ID, Name: "vendor", Scopes: c.scopes, Filter: c.filter})
			wantField(t, err, store.EBADREQUEST, c.field, c.name)
			if raw != "" {
				t.Errorf("%s: a key was returned", c.name)
			}
		}
		// An admin key refuses the same.
		admin := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: store.AllScopes()}).p)
		_, _, err = admin.CreateAPIKey(t.Context(), store.KeyInput{Name: "vendor", Scopes: scopes("read:leads", "read:usage"), Filter: vendorFilter})
		wantField(t, err, store.EBADREQUEST, "scopes", "admin creating a vendor key with read:usage")
		after, err := e.svc.FindAPIKeys(t.Context(), e.wa.ID)
		must(t, err, "FindAPIKeys")
		if len(after) != len(before)+1 {
			t.Errorf("%d keys after refused creates, want %d", len(after), len(before)+1)
		}

		// A vendor key describes its filter.
		v := e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:leads"), Filter: map[string]string{"source": " Vendor XYZ "}})
		if !maps.Equal(v.key.Filter, vendorFilter) || !maps.Equal(v.p.Filter, vendorFilter) {
			t.Errorf("vendor key's filter = %v, principal's %v; want %v", v.key.Filter, v.p.Filter, vendorFilter)
		}
		me, err := e.svc.Scoped(v.p).Whoami(t.Context())
		must(t, err, "Whoami")
		if !maps.Equal(me.Key.Filter, vendorFilter) {
			t.Errorf("whoami filter = %v, want %v", me.Key.Filter, vendorFilter)
		}
	})

	s.test(t, "ReferenceFilter", func(t *testing.T, b store.Backend) {
		// A key filtered on account_id sees the contacts and deals of one
		// account.
		e := newEnv(t, b)
		full := e.all(t, e.wa)
		acc1, err := full.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "One"})
		must(t, err, "CreateRecord")
		acc2, err := full.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Two"})
		must(t, err, "CreateRecord")
		var own []string
		for i, acc := range []any{acc1.ID, acc2.ID, nil} {
			e.clock.Add(time.Second)
			c, err := full.CreateRecord(t.Context(), store.Contacts, map[string]any{"last_name": "C", "account_id": acc})
			must(t, err, "CreateRecord(contact)")
			if i == 0 {
				own = append(own, c.ID)
			}
		}
		v := e.svc.Scoped(e.issue(t, store.KeyInput{WorkspaceID: e.wa.ID, Scopes: scopes("read:contacts", "write:contacts", "read:deals"),
			Filter: map[string]string{"account_id": acc1.ID}}).p)
		e.clock.Add(time.Second)
		c, err := v.CreateRecord(t.Context(), store.Contacts, map[string]any{"first_name": "New"})
		must(t, err, "CreateRecord(contact) through the filtered key")
		if c.Fields["account_id"] != acc1.ID {
			t.Errorf("new contact's account_id = %v, want %s", c.Fields["account_id"], acc1.ID)
		}
		own = append(own, c.ID)
		wantIDs(t, "contacts of account one", recordIDs(listAll(t, v, store.Contacts, store.ListParams{Sort: "created_at"})), own)
		_, err = v.CreateRecord(t.Context(), store.Contacts, map[string]any{"first_name": "Moved", "account_id": acc2.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "contact of another account")
		_, err = v.UpdateRecord(t.Context(), store.Contacts, c.ID, map[string]any{"account_id": acc2.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "moving a contact to another account")
		if got := listAll(t, v, store.Deals, store.ListParams{}); len(got) != 0 {
			t.Errorf("the filtered key sees %d deals, want 0", len(got))
		}
	})
}
