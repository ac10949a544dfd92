package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// MaxBatch is the most records one batch request may carry.
const MaxBatch = 100

// staleRetries bounds how often a write is retried when a concurrent write
// to the same record got there first. Each failed attempt means another
// writer succeeded, so with at most staleRetries writers of one record at a
// time every one of them succeeds.
const staleRetries = 32

// UpdateRecord applies a partial update: fields present in input are set,
// null or "" clears an optional field, absent fields are left alone.
func (sc *Scoped) UpdateRecord(ctx context.Context, r *Resource, id string, input map[string]any) (*Record, error) {
	if err := sc.authorize(operationFor(ActionUpdate, r)); err != nil {
		return nil, err
	}
	if !ValidID(id) {
		return nil, notFound(capitalize(r.Singular))
	}
	set, clear, err := r.ValidatePatch(input)
	if err != nil {
		return nil, err
	}
	if err := sc.checkPatch(set, clear); err != nil {
		return nil, err
	}
	if err := sc.checkRefs(ctx, r, set); err != nil {
		return nil, err
	}
	for range staleRetries {
		cur, err := sc.find(ctx, r, id)
		if err != nil {
			return nil, err
		}
		rec, err := sc.update(ctx, cur, set, clear)
		if errors.Is(err, ErrStale) {
			continue
		}
		return rec, err
	}
	return nil, ErrStale
}

// update merges set and clear into cur and stores it, provided cur is still
// the stored version (else ErrStale).
func (sc *Scoped) update(ctx context.Context, cur *Record, set map[string]any, clear []string) (*Record, error) {
	r := cur.Resource
	merged := maps.Clone(cur.Fields)
	if merged == nil {
		merged = map[string]any{}
	}
	maps.Copy(merged, set)
	for _, name := range clear {
		delete(merged, name)
	}
	if err := r.checkComplete(merged); err != nil {
		return nil, err
	}
	rec := *cur
	rec.Fields = merged
	rec.UpdatedAt = sc.s.Now()
	if !rec.UpdatedAt.After(cur.UpdatedAt) { // updated_at always advances
		rec.UpdatedAt = cur.UpdatedAt.Add(time.Millisecond)
	}
	if err := sc.s.backend.UpdateRecord(ctx, &rec, cur.UpdatedAt); err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, notFound(capitalize(r.Singular))
		}
		return nil, externalIDConflict(r, merged, err)
	}
	return &rec, nil
}

// DeleteRecord deletes a record, leaving a tombstone that lists show with
// include_deleted. A record that live records still reference is not deleted
// (conflict), so that nothing is silently orphaned.
func (sc *Scoped) DeleteRecord(ctx context.Context, r *Resource, id string) error {
	if err := sc.authorize(operationFor(ActionDelete, r)); err != nil {
		return err
	}
	if !ValidID(id) {
		return notFound(capitalize(r.Singular))
	}
	if _, err := sc.find(ctx, r, id); err != nil {
		return err
	}
	var refs []string
	for _, ref := range r.ReferencedBy() {
		rows, err := sc.s.backend.FindRecords(ctx, ref.Resource, sc.p.WorkspaceID, RecordQuery{
			Limit: 1, Sort: SortCreatedAt, Filters: []FieldFilter{{Field: ref.Field, Value: id}}})
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			refs = append(refs, fmt.Sprintf("%s (%s)", ref.Resource.Name, ref.Field))
		}
	}
	if len(refs) > 0 {
		return Errorf(ECONFLICT, "This %s is still referenced by %s; delete or reassign those records first.",
			r.Singular, strings.Join(refs, ", "))
	}
	err := sc.s.backend.DeleteRecord(ctx, r, sc.p.WorkspaceID, id, sc.s.Now())
	if ErrorCode(err) == ENOTFOUND {
		return notFound(capitalize(r.Singular))
	}
	return err
}

// UpsertRecord creates the record with the given external id (created is
// true) or updates the live one that has it, with the semantics of
// UpdateRecord. Concurrent upserts of one external id yield one record.
func (sc *Scoped) UpsertRecord(ctx context.Context, r *Resource, externalID string, input map[string]any) (rec *Record, created bool, err error) {
	if err := sc.authorize(operationFor(ActionUpsert, r)); err != nil {
		return nil, false, err
	}
	return sc.upsert(ctx, r, externalID, input)
}

func (sc *Scoped) upsert(ctx context.Context, r *Resource, externalID string, input map[string]any) (*Record, bool, error) {
	f, _ := r.Field(ExternalIDField)
	ext, err := f.normalize(externalID)
	if err != nil {
		return nil, false, err
	}
	if ext == nil {
		return nil, false, FieldError(ExternalIDField, "is required.")
	}
	if input == nil {
		return nil, false, Errorf(EBADREQUEST, "The request body must be a JSON object.")
	}
	if given, ok := input[ExternalIDField]; ok && given != nil {
		if g, err := f.normalize(given); err != nil || g != ext {
			return nil, false, FieldError(ExternalIDField, "must be the external id the record is upserted by (%q) or left out.", ext)
		}
	}
	input = maps.Clone(input)
	input[ExternalIDField] = ext
	set, clear, err := r.ValidatePatch(input)
	if err != nil {
		return nil, false, err
	}
	if err := sc.checkPatch(set, clear); err != nil {
		return nil, false, err
	}
	for range staleRetries {
		cur, err := sc.s.backend.FindRecordByExternalID(ctx, r, sc.p.WorkspaceID, ext.(string))
		switch {
		case ErrorCode(err) == ENOTFOUND:
			rec, err := sc.create(ctx, r, input)
			if ErrorCode(err) == ECONFLICT { // created concurrently: update it
				continue
			}
			return rec, err == nil, err
		case err != nil:
			return nil, false, err
		}
		if !sc.sees(cur) { // the external id is taken by a record this key cannot see
			return nil, false, externalIDConflict(r, map[string]any{ExternalIDField: ext}, ErrConflict)
		}
		if err := sc.checkRefs(ctx, r, set); err != nil {
			return nil, false, err
		}
		rec, err := sc.update(ctx, cur, set, clear)
		if errors.Is(err, ErrStale) {
			continue
		}
		return rec, false, err
	}
	return nil, false, ErrStale
}

// BatchResult is the outcome of one item of a batch: a record (Created tells
// whether it is new) or an error.
type BatchResult struct {
	Index   int
	Record  *Record
	Created bool
	Err     error
}

// BatchRecords reads the records of a batch, decoded JSON that must be an
// array. An item that is not a JSON object comes back as a nil input, with
// its error in bad by index, so that it fails on its own (BatchResult.Err)
// while the others go ahead. The number of records is checked when the
// batch runs.
func BatchRecords(v any) (inputs []map[string]any, bad map[int]error, err error) {
	items, ok := v.([]any)
	if !ok {
		return nil, nil, FieldError("records", "must be an array of 1 to %d records, got %s.", MaxBatch, JSONKind(v))
	}
	inputs = make([]map[string]any, len(items))
	for i, it := range items {
		if m, isObject := it.(map[string]any); isObject {
			inputs[i] = m
			continue
		}
		if bad == nil {
			bad = map[int]error{}
		}
		bad[i] = FieldError(fmt.Sprintf("records[%d]", i), "must be a JSON object, got %s.", JSONKind(it))
	}
	return inputs, bad, nil
}

func checkBatch(n int) error {
	if n < 1 || n > MaxBatch {
		return FieldError("records", "must hold 1 to %d records, got %d.", MaxBatch, n)
	}
	return nil
}

// CreateRecords creates each input independently; one item's failure does
// not affect the others.
func (sc *Scoped) CreateRecords(ctx context.Context, r *Resource, inputs []map[string]any) ([]BatchResult, error) {
	if err := sc.authorize(operationFor(ActionBatchCreate, r)); err != nil {
		return nil, err
	}
	if err := checkBatch(len(inputs)); err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(inputs))
	for i, in := range inputs {
		rec, err := sc.create(ctx, r, in)
		out[i] = BatchResult{Index: i, Record: rec, Created: err == nil, Err: err}
	}
	return out, nil
}

// UpsertRecords upserts each input by its external_id, independently.
func (sc *Scoped) UpsertRecords(ctx context.Context, r *Resource, inputs []map[string]any) ([]BatchResult, error) {
	if err := sc.authorize(operationFor(ActionBatchUpsert, r)); err != nil {
		return nil, err
	}
	if err := checkBatch(len(inputs)); err != nil {
		return nil, err
	}
	out := make([]BatchResult, len(inputs))
	for i, in := range inputs {
		ext, _ := in[ExternalIDField].(string)
		if strings.TrimSpace(ext) == "" {
			out[i] = BatchResult{Index: i, Err: FieldError(ExternalIDField, "is required for an upsert.")}
			continue
		}
		rec, created, err := sc.upsert(ctx, r, ext, in)
		out[i] = BatchResult{Index: i, Record: rec, Created: created, Err: err}
	}
	return out, nil
}
