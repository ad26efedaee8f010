package daemon

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// AddManPages gives a daemon's root command a hidden `man DIR`
// subcommand that writes a section 8 man page for the daemon and each
// of its commands into DIR: the packages build their man pages with it
// (SOURCE_DATE_EPOCH dates them, for reproducible builds). The root
// page gets a description of the files the daemon reads when the
// command has none of its own.
func AddManPages(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("making the man page directory: %w", err)
			}
			if root.Long == "" {
				root.Long = manDescription(root)
			}
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{Section: "8", Source: "ringfront " + Version(), Manual: "ringfront"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("writing man pages to %s: %w", dir, err)
			}
			return nil
		},
	})
}

func manDescription(root *cobra.Command) string {
	name := root.Name()
	return fmt.Sprintf(`%s. Part of ringfront.

The config is /etc/ringfront/%[2]s.yaml (readable by the service: it holds no
secrets; every key is explained in the installed example). Secret files
(keys, tokens) go in /etc/ringfront/%[2]s/, owned by root, mode 0600: the
systemd unit %[2]s.service passes that folder to the service as credentials,
and the daemon reads a secret from $CREDENTIALS_DIRECTORY when systemd set it,
from the configured path otherwise.

Start it with "systemctl enable --now %[2]s" once the config is written;
"%[2]s check-config" validates it (the unit runs it before every start).
The README is in /usr/share/doc/ringfront-%[2]s/.`, root.Short, name)
}
