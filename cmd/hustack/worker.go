package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/hustack/hustack/worker"
)

// errWorkerNeedsRedis explains why `hustack worker` will not run on an
// embedded Redis.
var errWorkerNeedsRedis = errors.New("worker: REDIS_URL is required: the worker takes its tasks from the Redis " +
	"that the API servers enqueue them in, and an embedded Redis in a separate process shares nothing with them " +
	"(to process usage inside the API server instead, run `hustack serve` with HUSTACK_WORKER on)")

// runWorker runs the asynq server alone until SIGINT or SIGTERM: the
// production shape, scaled apart from the API servers.
func runWorker(ctx context.Context, c *cli, args []string) error {
	fs := c.flags()
	dataDirFlag(fs, &c.cfg)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if c.cfg.RedisURL == "" {
		return errWorkerNeedsRedis
	}
	logger := newLogger(c.cfg, c.stderr)
	worker.LogRedisInternals(logger)
	logger.Debug("configuration", "config", c.cfg)

	svc, err := openService(ctx, c.cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	rds, err := worker.OpenRedis(ctx, c.cfg.RedisURL, logger)
	if err != nil {
		return errors.New(maskSecrets(err.Error(), c.cfg.RedisURL))
	}
	defer rds.Close()

	warnInsecureWebhooks(c.cfg, logger)
	srv := worker.NewServer(rds.Client, svc, c.cfg.workerConfig(worker.Config{}), logger)
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("hustack worker running", "store", c.cfg.storeDescription(), "redis", redisDescription(c.cfg), "version", version())
	<-ctx.Done()
	logger.Info("shutting down")
	// Running tasks get the worker's shutdown timeout to finish; the others
	// go back to their queue for another worker.
	srv.Shutdown()
	logger.Info("hustack worker stopped")
	return nil
}
