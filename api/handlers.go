package api

import (
	"net/http"

	"github.com/hustack/hustack/store"
)

func listRecords(r *request) (int, any, error) {
	lp, err := listParams(r.query)
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
