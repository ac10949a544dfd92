// Package worker moves usage events from the API to the store through asynq
// and Redis, and runs the periodic maintenance: usage logs past their
// retention, tombstones and idempotency keys past theirs, and API keys that
// their workspace's policy says have gone unused too long.
//
//   - OpenRedis connects to REDIS_URL, or starts an embedded Redis when it is
//     empty.
//   - Batcher is the API's usage recorder (api.UsageRecorder): it buffers
//     events in the process and enqueues them in TypeUsageBatch tasks.
//   - Server processes those tasks into the store, and schedules and runs
//     TypeUsageRetention, TypePurgeExpired and TypeKeysDisableUnused, each
//     once per interval across all Servers.
//
// A process that serves the API and runs the worker wires them so:
//
//	rds, err := worker.OpenRedis(ctx, os.Getenv("REDIS_URL"), logger)
//	batcher := worker.NewBatcher(rds.Client, worker.BatcherConfig{}, logger)
//	srv := worker.NewServer(rds.Client, svc, worker.Config{Retention: retention}, logger)
//	err = srv.Start()
//	// ... api.New(api.Config{Usage: batcher, ...}) serves requests ...
//
// and shuts down in this order: stop serving HTTP; batcher.Close(ctx), which
// enqueues what is buffered; srv.Drain(ctx) when Redis is embedded (its
// queued tasks would die with the process); srv.Shutdown(); rds.Close().
// `hustack worker` runs the Server alone; `serve` with the worker off runs
// only the Batcher, and the tasks wait in Redis for a worker.
package worker
