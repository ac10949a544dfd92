package store

import "time"

// Transports that produce usage events.
const (
	TransportREST = "rest"
	TransportMCP  = "mcp"
)

// UsageEvent records one authenticated request. It never holds the raw key
// or any request or response body.
type UsageEvent struct {
	ID          string    `json:"id"`
	WorkspaceID string    `json:"workspace_id"`
	KeyID       string    `json:"key_id"`
	Method      string    `json:"method"`
	Route       string    `json:"route"` // the route template, e.g. /api/v1/accounts/:id
	Status      int       `json:"status"`
	DurationMS  float64   `json:"duration_ms"`
	Time        time.Time `json:"time"`
	RequestID   string    `json:"request_id"`
	Transport   string    `json:"transport"`
	UserAgent   string    `json:"user_agent"`
}

// Day is the UTC calendar day of the event, the "day" grouping key.
func (e UsageEvent) Day() string { return e.Time.UTC().Format("2006-01-02") }

// UsageGroup is what usage counts are grouped by.
type UsageGroup string

const (
	GroupByDay    UsageGroup = "day"
	GroupByKey    UsageGroup = "key"
	GroupByRoute  UsageGroup = "route"
	GroupByStatus UsageGroup = "status"
)

// UsageQuery selects usage events of one workspace. Zero values match all.
type UsageQuery struct {
	KeyID  string
	Status int
	From   time.Time // inclusive
	To     time.Time // exclusive
	Limit  int
	Offset int
}

// UsageCount is one group of a usage summary. Errors counts statuses >= 400.
type UsageCount struct {
	Group  string `json:"group"`
	Count  int64  `json:"count"`
	Errors int64  `json:"errors"`
}
