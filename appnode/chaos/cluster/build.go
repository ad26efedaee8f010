package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
)

// appnodePackage is the daemon the chaos test runs.
const appnodePackage = "github.com/ringfront/ringfront/appnode"

// BuildAppnode builds appnode with -tags chaos (the clock-offset knob)
// into dir and returns the binary's path. It runs the go command, from
// the current directory, which must be inside the module.
func BuildAppnode(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "appnode")
	cmd := exec.CommandContext(ctx, goBin, "build", "-tags", "chaos", "-o", out, appnodePackage)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building appnode with -tags chaos: %v: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}
