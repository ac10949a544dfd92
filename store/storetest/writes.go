package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// wantStale fails the test unless err is store.ErrStale.
func wantStale(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrStale) {
		t.Errorf("%s: %v, want store.ErrStale", what, err)
	}
}

// wantGone fails the test unless the record id is not live: not found by id,
// and not listed without tombstones.
func wantGone(t *testing.T, b store.Backend, r *store.Resource, ws, id string) {
	t.Helper()
	_, err := b.FindRecordByID(t.Context(), r, ws, id)
	if store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("FindRecordByID(%s) = %v, want not_found", id, err)
	}
	list, err := b.FindRecords(t.Context(), r, ws, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 1000})
	must(t, err, "FindRecords")
	for _, rec := range list {
		if rec.ID == id {
			t.Errorf("FindRecords lists %s without IncludeDeleted", id)
		}
	}
}

// updated returns a copy of rec with other field values and a later
// updated_at, as Scoped would pass it to UpdateRecord.
func updated(rec *store.Record, fields map[string]any, at time.Time) *store.Record {
	u := *rec
	u.Fields = fields
	u.UpdatedAt = at
	return &u
}

// resourceWrites are the per-resource tests of updates, deletes and external ids.
func (s *suite) resourceWrites(t *testing.T, r *store.Resource) {
	s.test(t, "UpdateRecord", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		orig := insertRecord(t, b, r, w.ID, allFields(r, 0), at(time.Second))
		bystander := insertRecord(t, b, r, w.ID, allFields(r, 1), at(2*time.Second))

		// Every field changes, and the optional ones are cleared.
		fields := minimalFields(r, 3)
		fields[store.ExternalIDField] = "new external id"
		want := updated(orig, fields, at(time.Hour))
		must(t, b.UpdateRecord(t.Context(), want, orig.UpdatedAt), "UpdateRecord")
		got, err := b.FindRecordByID(t.Context(), r, w.ID, orig.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, want)
		if got.DeletedAt != nil {
			t.Errorf("updated record has deleted_at %v", got.DeletedAt)
		}
		byExt, err := b.FindRecordByExternalID(t.Context(), r, w.ID, "new external id")
		must(t, err, "FindRecordByExternalID")
		wantRecord(t, byExt, want)
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Sort: store.SortUpdatedAt, Limit: 10})
		must(t, err, "FindRecords")
		wantIDs(t, "FindRecords by -updated_at", recordIDs(list), []string{orig.ID, bystander.ID})
		wantRecord(t, list[0], want)

		// And back to every field set.
		again := updated(want, allFields(r, 5), at(2*time.Hour))
		must(t, b.UpdateRecord(t.Context(), again, want.UpdatedAt), "UpdateRecord")
		got, err = b.FindRecordByID(t.Context(), r, w.ID, orig.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, again)
		_, err = b.FindRecordByExternalID(t.Context(), r, w.ID, "new external id")
		wantCode(t, err, store.ENOTFOUND)

		got, err = b.FindRecordByID(t.Context(), r, w.ID, bystander.ID)
		must(t, err, "FindRecordByID(bystander)")
		wantRecord(t, got, bystander)
	})

	s.test(t, "UpdateRecordStaleOrMissing", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		other := newWorkspace(t, b, "other", at(0))
		orig := insertRecord(t, b, r, w.ID, allFields(r, 0), at(time.Second))
		first := updated(orig, allFields(r, 1), at(time.Hour))
		must(t, b.UpdateRecord(t.Context(), first, orig.UpdatedAt), "UpdateRecord")

		// A writer that read the record before the first update is stale.
		late := updated(orig, allFields(r, 2), at(2*time.Hour))
		wantStale(t, b.UpdateRecord(t.Context(), late, orig.UpdatedAt), "UpdateRecord with an old updated_at")
		// So is one that expects a version that never was.
		wantStale(t, b.UpdateRecord(t.Context(), late, at(time.Hour+time.Millisecond)), "UpdateRecord with a future updated_at")
		got, err := b.FindRecordByID(t.Context(), r, w.ID, orig.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, first)

		// Unknown ids and other workspaces' records are not found, and
		// nothing changes.
		unknown := updated(orig, allFields(r, 2), at(2*time.Hour))
		unknown.ID = store.NewID()
		wantCode(t, b.UpdateRecord(t.Context(), unknown, orig.UpdatedAt), store.ENOTFOUND)
		foreign := updated(first, allFields(r, 2), at(2*time.Hour))
		foreign.WorkspaceID = other.ID
		wantCode(t, b.UpdateRecord(t.Context(), foreign, first.UpdatedAt), store.ENOTFOUND)
		got, err = b.FindRecordByID(t.Context(), r, w.ID, orig.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, first)
		_, err = b.FindRecordByID(t.Context(), r, other.ID, orig.ID)
		wantCode(t, err, store.ENOTFOUND)

		// A deleted record cannot be updated: it is gone (not_found), or
		// stale, after which Scoped reads it again and finds nothing.
		must(t, b.DeleteRecord(t.Context(), r, w.ID, orig.ID, at(3*time.Hour)), "DeleteRecord")
		err = b.UpdateRecord(t.Context(), updated(first, allFields(r, 3), at(4*time.Hour)), first.UpdatedAt)
		if store.ErrorCode(err) != store.ENOTFOUND && !errors.Is(err, store.ErrStale) {
			t.Errorf("UpdateRecord of a deleted record: %v, want not_found or store.ErrStale", err)
		}
		err = b.UpdateRecord(t.Context(), updated(first, allFields(r, 3), at(4*time.Hour)), at(3*time.Hour))
		if store.ErrorCode(err) != store.ENOTFOUND && !errors.Is(err, store.ErrStale) {
			t.Errorf("UpdateRecord of a deleted record at its deletion time: %v, want not_found or store.ErrStale", err)
		}
		tomb := updated(first, first.Fields, at(3*time.Hour))
		tomb.DeletedAt = ptr(at(3 * time.Hour))
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, IncludeDeleted: true})
		must(t, err, "FindRecords")
		if len(list) != 1 {
			t.Fatalf("FindRecords with tombstones = %d records, want the one tombstone", len(list))
		}
		wantRecord(t, list[0], tomb)
		wantTimePtr(t, "deleted_at", list[0].DeletedAt, tomb.DeletedAt)
	})

	s.test(t, "DeleteRecord", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		other := newWorkspace(t, b, "other", at(0))
		fields := allFields(r, 0)
		fields[store.ExternalIDField] = "ext-7"
		rec := insertRecord(t, b, r, w.ID, fields, at(time.Second))
		keep := insertRecord(t, b, r, w.ID, allFields(r, 1), at(2*time.Second))

		// Deleting in another workspace, or an unknown id, finds nothing.
		wantCode(t, b.DeleteRecord(t.Context(), r, other.ID, rec.ID, at(time.Hour)), store.ENOTFOUND)
		wantCode(t, b.DeleteRecord(t.Context(), r, w.ID, store.NewID(), at(time.Hour)), store.ENOTFOUND)
		got, err := b.FindRecordByID(t.Context(), r, w.ID, rec.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, rec)

		deletedAt := at(time.Hour)
		must(t, b.DeleteRecord(t.Context(), r, w.ID, rec.ID, deletedAt), "DeleteRecord")
		wantGone(t, b, r, w.ID, rec.ID)
		_, err = b.FindRecordByExternalID(t.Context(), r, w.ID, "ext-7")
		wantCode(t, err, store.ENOTFOUND)
		wantCode(t, b.DeleteRecord(t.Context(), r, w.ID, rec.ID, at(2*time.Hour)), store.ENOTFOUND)

		// The tombstone keeps the fields; updated_at is the deletion time.
		list, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, IncludeDeleted: true})
		must(t, err, "FindRecords")
		wantIDs(t, "FindRecords with tombstones", recordIDs(list), []string{keep.ID, rec.ID})
		if len(list) == 2 {
			want := updated(rec, rec.Fields, deletedAt)
			wantRecord(t, list[1], want)
			wantTimePtr(t, "deleted_at", list[1].DeletedAt, &deletedAt)
			wantRecord(t, list[0], keep)
			wantTimePtr(t, "deleted_at of a live record", list[0].DeletedAt, nil)
		}
		got, err = b.FindRecordByID(t.Context(), r, w.ID, keep.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, keep)
		list, err = b.FindRecords(t.Context(), r, other.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 10, IncludeDeleted: true})
		must(t, err, "FindRecords")
		wantIDs(t, "another workspace's tombstones", recordIDs(list), nil)
	})

	s.test(t, "ExternalID", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		other := newWorkspace(t, b, "other", at(0))
		withExt := func(i int, ext string) map[string]any {
			f := minimalFields(r, i)
			f[store.ExternalIDField] = ext
			return f
		}
		first := insertRecord(t, b, r, w.ID, withExt(0, "sf-001"), at(time.Second))
		got, err := b.FindRecordByExternalID(t.Context(), r, w.ID, "sf-001")
		must(t, err, "FindRecordByExternalID")
		wantRecord(t, got, first)

		// Unique per workspace among live records.
		dup := newRecord(r, w.ID, withExt(1, "sf-001"), at(2*time.Second))
		wantCode(t, b.InsertRecord(t.Context(), dup), store.ECONFLICT)
		_, err = b.FindRecordByID(t.Context(), r, w.ID, dup.ID)
		wantCode(t, err, store.ENOTFOUND)
		elsewhere := insertRecord(t, b, r, other.ID, withExt(1, "sf-001"), at(2*time.Second))
		got, err = b.FindRecordByExternalID(t.Context(), r, other.ID, "sf-001")
		must(t, err, "FindRecordByExternalID in the other workspace")
		wantRecord(t, got, elsewhere)
		// Records without an external id never collide.
		for i := range 3 {
			insertRecord(t, b, r, w.ID, minimalFields(r, i), at(time.Duration(3+i)*time.Second))
		}
		// Exact match only.
		for _, ext := range []string{"SF-001", "sf-00", "sf-001 ", ".*", `{"$gt":""}`, "", "%"} {
			_, err := b.FindRecordByExternalID(t.Context(), r, w.ID, ext)
			if store.ErrorCode(err) != store.ENOTFOUND {
				t.Errorf("FindRecordByExternalID(%q) = %v, want not_found", ext, err)
			}
		}
		// Hostile external ids are plain strings.
		for i, h := range hostile {
			rec := insertRecord(t, b, r, w.ID, withExt(i, h), at(time.Duration(10+i)*time.Second))
			got, err := b.FindRecordByExternalID(t.Context(), r, w.ID, h)
			must(t, err, fmt.Sprintf("FindRecordByExternalID(%q)", h))
			wantRecord(t, got, rec)
		}

		// After a delete, the external id can be used again; the tombstone
		// keeps its own.
		must(t, b.DeleteRecord(t.Context(), r, w.ID, first.ID, at(time.Hour)), "DeleteRecord")
		_, err = b.FindRecordByExternalID(t.Context(), r, w.ID, "sf-001")
		wantCode(t, err, store.ENOTFOUND)
		second := insertRecord(t, b, r, w.ID, withExt(2, "sf-001"), at(2*time.Hour))
		got, err = b.FindRecordByExternalID(t.Context(), r, w.ID, "sf-001")
		must(t, err, "FindRecordByExternalID after reuse")
		wantRecord(t, got, second)
		// Deleted again and reused a third time.
		must(t, b.DeleteRecord(t.Context(), r, w.ID, second.ID, at(3*time.Hour)), "DeleteRecord")
		third := insertRecord(t, b, r, w.ID, withExt(3, "sf-001"), at(4*time.Hour))
		got, err = b.FindRecordByExternalID(t.Context(), r, w.ID, "sf-001")
		must(t, err, "FindRecordByExternalID after the second reuse")
		wantRecord(t, got, third)
		all, err := b.FindRecords(t.Context(), r, w.ID, store.RecordQuery{Sort: store.SortCreatedAt, Limit: 100, IncludeDeleted: true,
			Filters: []store.FieldFilter{{Field: store.ExternalIDField, Value: "sf-001"}}})
		must(t, err, "FindRecords by external id with tombstones")
		wantIDs(t, "records with external id sf-001", recordIDs(all), []string{third.ID, second.ID, first.ID})
		for _, rec := range all {
			if rec.Fields[store.ExternalIDField] != "sf-001" {
				t.Errorf("record %s: external_id = %v, want sf-001 kept", rec.ID, rec.Fields[store.ExternalIDField])
			}
		}
	})
}
