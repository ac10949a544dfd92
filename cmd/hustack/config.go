package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
)

// Config is the whole configuration of the hustack command. It is read from
// the environment once, in loadConfig; some commands let flags override a
// field. Nothing below package main reads the environment.
type Config struct {
	Addr           string          // HUSTACK_ADDR
	DataDir        string          // HUSTACK_DATA_DIR: the SQLite file lives here unless MongoURI is set
	MongoURI       string          // MONGODB_URI: selects the MongoDB backend (secret: may carry credentials)
	MongoDatabase  string          // MONGODB_DATABASE
	RedisURL       string          // REDIS_URL (secret: may carry credentials)
	Worker         bool            // HUSTACK_WORKER: run the worker inside `serve`
	MCP            bool            // HUSTACK_MCP: serve the MCP endpoint
	RateLimit      store.RateLimit // HUSTACK_RATE_LIMIT: default rate limit of new keys
	RateLimitMode  string          // HUSTACK_RATE_LIMIT_MODE: exact or synced, with REDIS_URL
	UsageRetention time.Duration   // HUSTACK_USAGE_RETENTION: how long usage logs are kept
	// TombstoneRetention is how long deleted records are listed with
	// include_deleted before the worker purges them (HUSTACK_TOMBSTONE_RETENTION).
	TombstoneRetention time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered
	// (HUSTACK_IDEMPOTENCY_TTL).
	IdempotencyTTL time.Duration
	LogLevel       slog.Level // HUSTACK_LOG_LEVEL
	LogFormat      string     // HUSTACK_LOG_FORMAT: text or json
	// Webhooks: HUSTACK_WEBHOOK_ALLOW_INSECURE allows http and non-public
	// targets; the retry schedule, timeout and the failure time after which
	// a subscription is disabled (empty/zero: the worker's defaults).
	WebhookAllowInsecure bool
	WebhookRetries       []time.Duration // HUSTACK_WEBHOOK_RETRY_SCHEDULE
	WebhookTimeout       time.Duration   // HUSTACK_WEBHOOK_TIMEOUT
	WebhookDisableAfter  time.Duration   // HUSTACK_WEBHOOK_DISABLE_AFTER
	URL                  string          // HUSTACK_URL: the REST API `hustack mcp` calls
	APIKey               string          // HUSTACK_API_KEY: the key `hustack mcp` calls it with (secret)
}

// defaultConfig returns the configuration used when no variable is set.
func defaultConfig() Config {
	return Config{
		Addr:               "127.0.0.1:8080",
		DataDir:            "./data",
		MongoDatabase:      "hustack",
		Worker:             true,
		MCP:                true,
		RateLimit:          store.DefaultRateLimit,
		RateLimitMode:      rateLimitSynced,
		UsageRetention:     90 * 24 * time.Hour,
		TombstoneRetention: worker.DefaultTombstoneRetention,
		IdempotencyTTL:     store.DefaultIdempotencyTTL,
		LogLevel:           slog.LevelInfo,
		LogFormat:          "text",
	}
}

// envVar documents one environment variable, for `hustack help`.
type envVar struct {
	name, def, doc string
}

var envVars = []envVar{
	{"HUSTACK_ADDR", "127.0.0.1:8080", "address `serve` listens on"},
	{"HUSTACK_DATA_DIR", "./data", "directory of the SQLite database (hustack.db)"},
	{"MONGODB_URI", "", "use MongoDB instead of SQLite, e.g. mongodb://localhost:27017"},
	{"MONGODB_DATABASE", "hustack", "MongoDB database name"},
	{"REDIS_URL", "", "Redis for the task queues and shared rate limits, e.g. redis://localhost:6379/0; unset: an embedded in-process Redis"},
	{"HUSTACK_WORKER", "on", "run the worker inside `serve` (on|off)"},
	{"HUSTACK_MCP", "on", "serve the MCP endpoint (on|off)"},
	{"HUSTACK_RATE_LIMIT", "100/10s", "rate limit of new keys (N/s, N/m, N/h, N/<duration>)"},
	{"HUSTACK_RATE_LIMIT_MODE", "synced", "with REDIS_URL: exact (a Redis round trip per request) or synced (shared every 100 ms)"},
	{"HUSTACK_USAGE_RETENTION", "90d", "how long usage logs are kept (e.g. 90d, 720h)"},
	{"HUSTACK_TOMBSTONE_RETENTION", "30d", "how long deleted records stay listed with include_deleted before they are purged"},
	{"HUSTACK_IDEMPOTENCY_TTL", "24h", "how long an Idempotency-Key is remembered"},
	{"HUSTACK_WEBHOOK_ALLOW_INSECURE", "off", "allow webhooks to http URLs and to loopback, private and link-local addresses (tests, local use)"},
	{"HUSTACK_WEBHOOK_RETRY_SCHEDULE", "10s,1m,5m,30m,2h,5h,10h,14h,20h,20h", "delays between webhook delivery attempts, +-20% jitter"},
	{"HUSTACK_WEBHOOK_TIMEOUT", "10s", "how long a webhook receiver has to answer"},
	{"HUSTACK_WEBHOOK_DISABLE_AFTER", "3d", "how long deliveries to a subscription may fail before it is disabled"},
	{"HUSTACK_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"HUSTACK_LOG_FORMAT", "text", "text or json"},
	{"HUSTACK_URL", "", "`hustack mcp`: the REST API's base URL, e.g. http://127.0.0.1:8080/api/v1"},
	{"HUSTACK_API_KEY", "", "`hustack mcp`: the API key its tools run with"},
}

// loadConfig reads the configuration from the environment. An invalid value
// is an error naming the variable.
func loadConfig(getenv func(string) string) (Config, error) {
	c := defaultConfig()
	set := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	set("HUSTACK_ADDR", &c.Addr)
	set("HUSTACK_DATA_DIR", &c.DataDir)
	set("MONGODB_URI", &c.MongoURI)
	set("MONGODB_DATABASE", &c.MongoDatabase)
	set("REDIS_URL", &c.RedisURL)
	set("HUSTACK_URL", &c.URL)
	set("HUSTACK_API_KEY", &c.APIKey)

	var err error
	if c.Worker, err = envSwitch(getenv, "HUSTACK_WORKER", c.Worker); err != nil {
		return Config{}, err
	}
	if c.MCP, err = envSwitch(getenv, "HUSTACK_MCP", c.MCP); err != nil {
		return Config{}, err
	}
	if v := strings.TrimSpace(getenv("HUSTACK_RATE_LIMIT")); v != "" {
		if c.RateLimit, err = store.ParseRateLimit(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_RATE_LIMIT: %q is not a rate limit; use N/s, N/m, N/h or N/<duration> such as 100/10s", v)
		}
	}
	if v := strings.ToLower(strings.TrimSpace(getenv("HUSTACK_RATE_LIMIT_MODE"))); v != "" {
		if v != rateLimitExact && v != rateLimitSynced {
			return Config{}, fmt.Errorf("HUSTACK_RATE_LIMIT_MODE: %q is not a mode; use exact or synced", v)
		}
		c.RateLimitMode = v
	}
	if v := strings.TrimSpace(getenv("HUSTACK_USAGE_RETENTION")); v != "" {
		if c.UsageRetention, err = parseDuration(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_USAGE_RETENTION: %w", err)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_TOMBSTONE_RETENTION")); v != "" {
		if c.TombstoneRetention, err = parseDuration(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_TOMBSTONE_RETENTION: %w", err)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_IDEMPOTENCY_TTL")); v != "" {
		if c.IdempotencyTTL, err = parseDuration(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_IDEMPOTENCY_TTL: %w", err)
		}
		if c.IdempotencyTTL < time.Minute {
			return Config{}, fmt.Errorf("HUSTACK_IDEMPOTENCY_TTL: %q is too short; an idempotency key must outlive a request and its retries (at least 1m)", v)
		}
	}
	if c.WebhookAllowInsecure, err = envSwitch(getenv, "HUSTACK_WEBHOOK_ALLOW_INSECURE", c.WebhookAllowInsecure); err != nil {
		return Config{}, err
	}
	if v := strings.TrimSpace(getenv("HUSTACK_WEBHOOK_RETRY_SCHEDULE")); v != "" {
		if c.WebhookRetries, err = worker.ParseRetrySchedule(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_WEBHOOK_RETRY_SCHEDULE: %w", err)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_WEBHOOK_TIMEOUT")); v != "" {
		if c.WebhookTimeout, err = parseDuration(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_WEBHOOK_TIMEOUT: %w", err)
		}
		if c.WebhookTimeout > worker.MaxWebhookTimeout {
			return Config{}, fmt.Errorf("HUSTACK_WEBHOOK_TIMEOUT: %q is too long; at most %s", v, worker.MaxWebhookTimeout)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_WEBHOOK_DISABLE_AFTER")); v != "" {
		if c.WebhookDisableAfter, err = parseDuration(v); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_WEBHOOK_DISABLE_AFTER: %w", err)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Config{}, fmt.Errorf("HUSTACK_LOG_LEVEL: %q is not a level; use debug, info, warn or error", v)
		}
	}
	if v := strings.TrimSpace(getenv("HUSTACK_LOG_FORMAT")); v != "" {
		v = strings.ToLower(v)
		if v != "text" && v != "json" {
			return Config{}, fmt.Errorf("HUSTACK_LOG_FORMAT: %q is not a format; use text or json", v)
		}
		c.LogFormat = v
	}
	return c, nil
}

// envSwitch reads an on/off variable.
func envSwitch(getenv func(string) string, name string, def bool) (bool, error) {
	v := strings.ToLower(strings.TrimSpace(getenv(name)))
	switch v {
	case "":
		return def, nil
	case "on", "true", "1", "yes":
		return true, nil
	case "off", "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("%s: %q is not a switch; use on or off", name, v)
}

// parseDuration reads a positive Go duration ("720h", "90m") or a number of
// days ("30d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a duration; use Go durations such as 720h or 90m, or days such as 30d", s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, bad
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: the duration must be positive", s)
	}
	return d, nil
}

// formatSchedule writes a schedule as worker.ParseRetrySchedule reads it.
func formatSchedule(ds []time.Duration) string {
	if len(ds) == 0 {
		return "default"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

func durationOrDefault(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// workerConfig returns base with the worker settings of the configuration.
func (c Config) workerConfig(base worker.Config) worker.Config {
	if base.Retention == 0 {
		base.Retention = c.UsageRetention
	}
	if base.TombstoneRetention == 0 {
		base.TombstoneRetention = c.TombstoneRetention
	}
	if base.WebhookRetrySchedule == nil {
		base.WebhookRetrySchedule = c.WebhookRetries
	}
	if base.WebhookTimeout == 0 {
		base.WebhookTimeout = c.WebhookTimeout
	}
	if base.WebhookDisableAfter == 0 {
		base.WebhookDisableAfter = c.WebhookDisableAfter
	}
	return base
}

// storeDescription says which backend the configuration selects, without
// secrets.
func (c Config) storeDescription() string {
	if c.MongoURI != "" {
		return fmt.Sprintf("mongodb %s database %s", maskURL(c.MongoURI), c.MongoDatabase)
	}
	return "sqlite " + sqlitePath(c.DataDir)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// String prints the configuration with secrets masked.
func (c Config) String() string {
	var b strings.Builder
	for _, kv := range c.pairs() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	return b.String()
}

// LogValue logs the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, kv := range c.pairs() {
		attrs = append(attrs, slog.String(kv[0], kv[1]))
	}
	return slog.GroupValue(attrs...)
}

func (c Config) pairs() [][2]string {
	return [][2]string{
		{"HUSTACK_ADDR", c.Addr},
		{"HUSTACK_DATA_DIR", c.DataDir},
		{"MONGODB_URI", maskURL(c.MongoURI)},
		{"MONGODB_DATABASE", c.MongoDatabase},
		{"REDIS_URL", maskURL(c.RedisURL)},
		{"HUSTACK_WORKER", onOff(c.Worker)},
		{"HUSTACK_MCP", onOff(c.MCP)},
		{"HUSTACK_RATE_LIMIT", c.RateLimit.String()},
		{"HUSTACK_RATE_LIMIT_MODE", c.RateLimitMode},
		{"HUSTACK_USAGE_RETENTION", c.UsageRetention.String()},
		{"HUSTACK_TOMBSTONE_RETENTION", c.TombstoneRetention.String()},
		{"HUSTACK_IDEMPOTENCY_TTL", c.IdempotencyTTL.String()},
		{"HUSTACK_WEBHOOK_ALLOW_INSECURE", onOff(c.WebhookAllowInsecure)},
		{"HUSTACK_WEBHOOK_RETRY_SCHEDULE", formatSchedule(c.WebhookRetries)},
		{"HUSTACK_WEBHOOK_TIMEOUT", durationOrDefault(c.WebhookTimeout)},
		{"HUSTACK_WEBHOOK_DISABLE_AFTER", durationOrDefault(c.WebhookDisableAfter)},
		{"HUSTACK_LOG_LEVEL", strings.ToLower(c.LogLevel.String())},
		{"HUSTACK_LOG_FORMAT", c.LogFormat},
		{"HUSTACK_URL", c.URL},
		{"HUSTACK_API_KEY", maskKey(c.APIKey)},
	}
}

const masked = "xxxxx"

// maskKey shows that an API key is set without showing it.
func maskKey(k string) string {
	if k == "" {
		return ""
	}
	return masked
}

// secretParams are URI query parameters whose values are credentials.
var secretParams = []string{"password", "secret", "token", "authmechanismproperties"}

// maskURL hides the password of a connection URI such as
// mongodb://user:pass@host/db or redis://:pass@host:6379/0, and the values of
// query parameters that carry credentials. It works on the raw text so that
// URIs net/url cannot parse (several MongoDB hosts) are masked too.
func maskURL(raw string) string {
	if raw == "" {
		return ""
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return masked // not a URI: show nothing of it
	}
	// The last '@' ends the user information, even when a password holds an
	// unescaped '/', '?' or '@'. Should the '@' be in the query instead, more
	// than the password is masked, never less.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if user, _, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			rest = user + ":" + masked + rest[at:]
		}
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	out := scheme + "://" + rest
	if query != "" {
		params := strings.Split(query, "&")
		for i, p := range params {
			name, _, _ := strings.Cut(p, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			for _, s := range secretParams {
				if strings.Contains(strings.ToLower(name), s) {
					params[i] = name + "=" + masked
				}
			}
		}
		out += "?" + strings.Join(params, "&")
	}
	return out
}

// maskSecrets removes the password of uri from text, such as an error
// message that quotes the URI.
func maskSecrets(text, uri string) string {
	if uri == "" {
		return text
	}
	text = strings.ReplaceAll(text, uri, maskURL(uri))
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return text
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return text
	}
	if _, password, ok := strings.Cut(rest[:at], ":"); ok && password != "" {
		text = strings.ReplaceAll(text, password, masked)
		if p, err := url.PathUnescape(password); err == nil && p != "" {
			text = strings.ReplaceAll(text, p, masked)
		}
	}
	return text
}
