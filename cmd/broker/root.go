package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/procq/procq/broker"
	"github.com/procq/procq/internal/cli"
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
0600), which producers and consumers read.`,
		Args: cobra.NoArgs,
		RunE: runBroker,
	}
	cli.AddConfigFlag(root)
	root.Flags().String("url", "", "listen URL (broker.url)")
	root.Flags().String("store-dir", "", "JetStream store directory (broker.store_dir)")
	root.AddCommand(newStatusCmd())
	return root
}

func runBroker(cmd *cobra.Command, _ []string) error {
	cfg, err := cli.Load(cmd, serverFlags)
	if err != nil {
		return err
	}
	logger, closeLog, err := cli.Logger("broker", "", cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	srv, err := broker.Start(cli.ServerConfig(cfg), logger)
	if err != nil {
		return err
	}
	logger.Info("broker ready", "url", srv.ClientURL(), "store_dir", cfg.Broker.StoreDir, "token_file", cfg.Broker.TokenPath())
	fmt.Fprintf(cmd.OutOrStdout(), "Broker: listening on %s (store %s)\n", srv.ClientURL(), cfg.Broker.StoreDir)
	err = srv.Run(cmd.Context())
	logger.Info("broker stopped")
	fmt.Fprintln(cmd.OutOrStdout(), "Broker: stopped")
	return err
}
