package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// Route is one REST route of the operation table. Routes are data so that
// tests can check that every operation is served and the API documentation
// can be generated from them.
type Route struct {
	Operation store.Operation
	Method    string
	Path      string  // gin pattern, such as /api/v1/accounts/:id
	Query     []Param // accepted query parameters; any other is refused
	// Body reports whether the route reads a JSON object body (the fields of
	// Operation.Resource).
	Body   bool
	handle handlerFunc
}

// Param describes a query parameter.
type Param struct {
	Name        string
	Type        string // "integer", "string", "id" or "date-time"
	Enum        []string
	Default     string
	Description string
}

// request is what a route handler gets: the scoped operations of the
// caller, the validated query and the gin context for path and body.
type request struct {
	ctx   context.Context
	c     *gin.Context
	s     *server
	sc    *store.Scoped
	op    store.Operation
	query map[string]string
}

type handlerFunc func(r *request) (status int, body any, err error)

// APIPrefix starts every REST path.
const APIPrefix = "/api/v1"

var (
	pageParams = []Param{
		{Name: "limit", Type: "integer", Default: "50", Description: "Page size, 1 to 200; larger values are clamped to 200."},
		{Name: "offset", Type: "integer", Default: "0", Description: "Number of records to skip, >= 0."},
	}
	usageFilterParams = []Param{
		{Name: "key_id", Type: "id", Description: "Only requests made with this API key."},
		{Name: "from", Type: "date-time", Description: "Only requests at or after this RFC 3339 time."},
		{Name: "to", Type: "date-time", Description: "Only requests before this RFC 3339 time."},
	}
	groupByParam = Param{Name: "group_by", Type: "string", Enum: []string{"day", "key", "route", "status"}, Default: "day",
		Description: "What to group the counts by."}
	statusParam = Param{Name: "status", Type: "integer", Description: "Only requests answered with this HTTP status."}
)

var routes = buildRoutes()

// Routes returns the REST routes, one per operation of store.Operations, in
// the table's order.
func Routes() []Route { return slices.Clone(routes) }

func buildRoutes() []Route {
	var out []Route
	for _, op := range store.Operations {
		var rt Route
		switch op.Action {
		case store.ActionList:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/" + op.Resource.Name, Query: pageParams, handle: listRecords}
		case store.ActionGet:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/" + op.Resource.Name + "/:id", handle: getRecord}
		case store.ActionCreate:
			rt = Route{Method: http.MethodPost, Path: APIPrefix + "/" + op.Resource.Name, Body: true, handle: createRecord}
		case store.ActionWhoami:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/me", handle: whoami}
		case store.ActionUsageCounts:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/usage",
				Query: append([]Param{groupByParam}, usageFilterParams...), handle: usageCounts}
		case store.ActionUsageLogs:
			rt = Route{Method: http.MethodGet, Path: APIPrefix + "/usage/logs",
				Query: slices.Concat(usageFilterParams, []Param{statusParam}, pageParams), handle: usageLogs}
		default:
			continue // an operation without a route fails the route table test
		}
		rt.Operation = op
		out = append(out, rt)
	}
	return out
}

// handle adapts a route handler to gin: it validates the query string,
// builds the caller's scoped operations and writes the result or the error.
func (s *server) handle(rt Route) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := parseQuery(c.Request.URL.RawQuery, rt.Query)
		if err != nil {
			s.writeError(c, err)
			return
		}
		ctx := c.Request.Context()
		p, _ := store.PrincipalFromContext(ctx)
		status, body, err := rt.handle(&request{ctx: ctx, c: c, s: s, sc: s.svc.Scoped(p), op: rt.Operation, query: q})
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(status, body)
	}
}
