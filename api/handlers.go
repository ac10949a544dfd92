package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hustack/hustack/store"
)

func listRecords(r *request) (int, any, error) {
	lp, err := recordListQuery(r.query, r.op.Resource)
	if err != nil {
		return 0, nil, err
	}
	page, err := r.sc.FindRecords(r.ctx, r.op.Resource, lp)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

func getRecord(r *request) (int, any, error) {
	rec, err := r.sc.FindRecordByID(r.ctx, r.op.Resource, r.c.Param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

func createRecord(r *request) (int, any, error) {
	input, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	rec, err := r.sc.CreateRecord(r.ctx, r.op.Resource, input)
	if err != nil {
		return 0, nil, err
	}
	r.c.Header("Location", APIPrefix+"/"+r.op.Resource.Name+"/"+rec.ID)
	return http.StatusCreated, rec, nil
}

func updateRecord(r *request) (int, any, error) {
	input, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	rec, err := r.sc.UpdateRecord(r.ctx, r.op.Resource, r.c.Param("id"), input)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

func deleteRecord(r *request) (int, any, error) {
	if err := r.sc.DeleteRecord(r.ctx, r.op.Resource, r.c.Param("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func upsertRecord(r *request) (int, any, error) {
	// The engine routes on the escaped path and leaves path values escaped,
	// so that an external id may hold any character, "/" included.
	ext, err := url.PathUnescape(r.c.Param(store.ExternalIDField))
	if err != nil {
		return 0, nil, store.FieldError(store.ExternalIDField, "is not a valid URL-encoded path segment.")
	}
	input, err := decodeObject(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	rec, created, err := r.sc.UpsertRecord(r.ctx, r.op.Resource, ext, input)
	if err != nil {
		return 0, nil, err
	}
	if created {
		r.c.Header("Location", APIPrefix+"/"+r.op.Resource.Name+"/"+rec.ID)
		return http.StatusCreated, rec, nil
	}
	return http.StatusOK, rec, nil
}

// BatchRequest is the body of the batch routes.
type BatchRequest struct {
	Records []map[string]any `json:"records"`
}

// BatchResponse is the answer of the batch routes: one result per record,
// in the order of the request.
type BatchResponse struct {
	Results []BatchItem `json:"results"`
}

// BatchItem is the outcome of one record of a batch: Status 201 (created) or
// 200 (updated, upserts only) with Data, or an error status with Error.
type BatchItem struct {
	Index  int           `json:"index"`
	Status int           `json:"status"`
	Data   *store.Record `json:"data,omitempty"`
	Error  *ItemError    `json:"error,omitempty"`
}

// ItemError is the error of one batch item, shaped like ErrorBody without
// the request id (the batch response carries it in X-Request-Id).
type ItemError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func batchCreate(r *request) (int, any, error) {
	return batch(r, r.sc.CreateRecords)
}

func batchUpsert(r *request) (int, any, error) {
	return batch(r, r.sc.UpsertRecords)
}

func batch(r *request, run func(ctx context.Context, res *store.Resource, inputs []map[string]any) ([]store.BatchResult, error)) (int, any, error) {
	inputs, bad, err := decodeBatch(r.c.Request)
	if err != nil {
		return 0, nil, err
	}
	results, err := run(r.ctx, r.op.Resource, inputs)
	if err != nil {
		return 0, nil, err
	}
	out := BatchResponse{Results: make([]BatchItem, len(results))}
	for i, res := range results {
		if itemErr, isBad := bad[res.Index]; isBad {
			res.Err, res.Record = itemErr, nil
		}
		item := BatchItem{Index: res.Index}
		switch {
		case res.Err != nil:
			code, msg := r.s.errorOf(r.c, res.Err, "index", res.Index)
			item.Status, item.Error = StatusOf(code), &ItemError{Error: code, Message: msg}
		case res.Created:
			item.Status, item.Data = http.StatusCreated, res.Record
		default:
			item.Status, item.Data = http.StatusOK, res.Record
		}
		out.Results[i] = item
	}
	return http.StatusOK, out, nil
}

// MeResponse is the body of GET /api/v1/me.
type MeResponse struct {
	Workspace MeWorkspace `json:"workspace"`
	Key       store.MeKey `json:"key"`
	// RateLimitState is the key's rate limit after this request; present
	// when a rate limiter is configured and answered.
	RateLimitState *RateLimitState `json:"rate_limit_state,omitempty"`
}

// MeWorkspace is the caller's workspace as GET /api/v1/me shows it.
type MeWorkspace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RateLimitState mirrors the X-RateLimit-* headers.
type RateLimitState struct {
	Limit        int `json:"limit"`
	Remaining    int `json:"remaining"`
	ResetSeconds int `json:"reset_seconds"`
}

func whoami(r *request) (int, any, error) {
	me, err := r.sc.Whoami(r.ctx)
	if err != nil {
		return 0, nil, err
	}
	out := MeResponse{Workspace: MeWorkspace{ID: me.Workspace.ID, Name: me.Workspace.Name}, Key: me.Key}
	if v, ok := r.c.Get(rateDecisionKey); ok {
		d := v.(RateDecision)
		out.RateLimitState = &RateLimitState{Limit: d.Limit, Remaining: max(d.Remaining, 0), ResetSeconds: ceilSeconds(d.Reset)}
	}
	return http.StatusOK, out, nil
}

// UsageCountsResponse is the body of GET /api/v1/usage.
type UsageCountsResponse struct {
	Data    []store.UsageCount `json:"data"`
	GroupBy string             `json:"group_by"`
}

func usageCounts(r *request) (int, any, error) {
	q, err := usageQuery(r.query)
	if err != nil {
		return 0, nil, err
	}
	by := r.query["group_by"]
	if by == "" {
		by = string(store.GroupByDay)
	}
	counts, err := r.sc.CountUsage(r.ctx, q, store.UsageGroup(by))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, UsageCountsResponse{Data: counts, GroupBy: by}, nil
}

func usageLogs(r *request) (int, any, error) {
	q, err := usageQuery(r.query)
	if err != nil {
		return 0, nil, err
	}
	lp, err := listParams(r.query)
	if err != nil {
		return 0, nil, err
	}
	page, err := r.sc.FindUsageLogs(r.ctx, q, lp)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}
