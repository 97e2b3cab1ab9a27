package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/internal/cli"
	"github.com/procq/procq/internal/serve"
)

var serverFlags = map[string]string{
	"url":       "broker.url",
	"store-dir": "broker.store_dir",
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded NATS JetStream broker until SIGINT/SIGTERM",
		Long: `broker runs NATS JetStream with file storage in broker.store_dir, listening
on broker.url (127.0.0.1 unless configured otherwise). It locks its store dir,
and on first start writes a random client token to broker.token_file (mode
0600), which producers and consumers read.

With broker.cluster.name set it is a node of a NATS cluster: it listens for
routes on broker.cluster.listen and joins broker.cluster.routes; every node
must share one client token (broker.token or broker.token_file).`,
		Args: cobra.NoArgs,
		RunE: runBroker,
	}
	cli.AddConfigFlag(root)
	cli.AddVersion(root)
	root.Flags().String("url", "", "listen URL (broker.url)")
	root.Flags().String("store-dir", "", "JetStream store directory (broker.store_dir)")
	root.AddCommand(newStatusCmd(), newDeadCmd(), newScheduleCmd(), newQueueCmd(), newTaskCmd())
	return root
}

func runBroker(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, serverFlags)
	if err != nil {
		return err
	}
	logger, closeLog, err := cli.Logger("broker", cfg.Broker.Name, cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	nc, err := serve.NodeConfig(cfg)
	if err != nil {
		return err
	}
	srv, err := broker.Start(nc, logger)
	if err != nil {
		return serve.StartError(cfg, err)
	}
	if err := serve.Declare(cmd.Context(), cfg, srv, logger); err != nil {
		srv.Shutdown()
		return err
	}
	logger.Info("broker ready", "url", srv.ClientURL(), "name", srv.Name(), "store_dir", cfg.Broker.StoreDir,
		"token_file", cfg.Broker.TokenPath(), "cluster", cfg.Broker.Cluster.Name, "routes_listen", srv.ClusterAddr(),
		"sync_always", srv.SyncAlways(), "sync_interval", srv.SyncInterval())
	fmt.Fprintf(cmd.OutOrStdout(), "Broker: listening on %s (store %s)\n", srv.ClientURL(), cfg.Broker.StoreDir)
	ectx, stopEndpoints := context.WithCancel(cmd.Context())
	defer stopEndpoints()
	bound, err := serve.Endpoints(ectx, cfg, srv, logger)
	if err != nil {
		srv.Shutdown()
		return err
	}
	for _, key := range []string{"broker.metrics", "broker.monitor", "broker.ui"} {
		if addr := bound[key]; addr != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "Broker: %s on %s\n", key, addr)
		}
	}
	err = srv.Run(cmd.Context())
	logger.Info("broker stopped")
	fmt.Fprintln(cmd.OutOrStdout(), "Broker: stopped")
	return err
}
