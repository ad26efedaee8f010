package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

// backupTimeout bounds one backup call: a checkpoint hard-links the
// sstables (seconds for any size), but copies them when the target is
// on another file system.
const backupTimeout = 30 * time.Minute

// backupCmd is `appnode backup --to DIR`: the running member snapshots
// its store into DIR through its admin API (the daemon holds the
// store's lock, so only it can read the store consistently).
func backupCmd(target daemon.AdminTarget) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "backup --to DIR",
		Short: "Snapshot the running member's store into a new directory (online, consistent)",
		Long: "Asks the running member (admin API, POST /v1/backup) to write a consistent snapshot of its " +
			"store into DIR, which must not exist. DIR is written by the daemon, not by this command: " +
			"it must be a path the daemon may write (under systemd, below /var/lib/appnode-backup, the unit's " +
			"second StateDirectory, or below a ReadWritePaths= added to the unit).",
		Args: cobra.NoArgs,
	}
	c := daemon.NewAdminClient(cmd, target)
	cmd.Flags().StringVar(&to, "to", "", "new directory for the backup (must not exist)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if to == "" {
			return config.Errorf("--to", to, "is required: the new directory for the backup")
		}
		abs, err := filepath.Abs(to)
		if err != nil {
			return config.Errorf("--to", to, "%v", err)
		}
		var info store.BackupInfo
		if err := c.Call(cmd.Context(), "POST", "/v1/backup?dir="+url.QueryEscape(abs), backupTimeout, &info); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "backed up store %s into %s: %d files, %d bytes, %.2fs\n",
			info.StoreID, info.Dir, info.Files, info.Bytes, info.Seconds)
		return nil
	}
	return cmd
}

// restoreCmd is `appnode restore --from DIR`: with the member stopped,
// put a backup in place of its data directory (--data-dir, else
// data_dir from the config).
func restoreCmd(load loader) *cobra.Command {
	var from string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore --from DIR",
		Short: "Put a backup in place of a stopped member's data (it then catches up from the others)",
		Long: "Copies the backup in DIR into the data directory (--data-dir, else data_dir from the config) " +
			"of a member that is stopped, refusing a data directory that is not empty unless --force " +
			"(which removes its contents first) and always one the member has open. The restored store " +
			"gets a new store id: it is not the disk the member had. Start the member afterwards: it " +
			"catches up (hints held for it, then anti-entropy) before it answers from its own store alone.",
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&from, "from", "", "backup directory (made by appnode backup)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the contents of a data directory that is not empty")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if from == "" {
			return config.Errorf("--from", from, "is required: the backup directory")
		}
		dataDir, _ := cmd.Flags().GetString("data-dir")
		if dataDir == "" {
			cfg, err := load(cmd)
			if err != nil {
				return fmt.Errorf("reading data_dir from the config (or give --data-dir): %w", err)
			}
			dataDir = cfg.DataDir
		}
		info, err := store.Restore(from, dataDir, force, store.Options{})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "restored the backup of store %s taken %s into %s; new store id %s\n"+
			"start the member: it catches up from the others before it answers alone\n",
			info.Backup.StoreID, info.Backup.Taken.Format(time.RFC3339), dataDir, info.StoreID)
		return nil
	}
	return cmd
}
