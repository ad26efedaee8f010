//go:build boottest

// Package boottest proves the Debian packages under a real systemd: it
// builds them (make deb, twice: the release and an upgrade of it),
// installs them into a minimal Debian tree, boots that tree with
// systemd-nspawn, and checks every unit from inside (checks.sh, run by
// ringfront-boottest.service, which powers the machine off when it is
// done). `make boottest` runs it, and `make test` runs that.
//
// The tree (mmdebstrap, about a minute) is cached in $BOOTTEST_CACHE
// (default /var/cache/ringfront/boottest), under a name that changes
// with the packages it is made with, and made again when missing; each
// run boots a copy, so the cache stays clean. It needs root; a user who
// is not root gets a skip saying so.
package boottest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// treeArgs make the tree: what the recipe names, plus what the
// checks use (dig, curl) and what the packages depend on (procps).
var treeArgs = []string{"--variant=minbase",
	"--include=systemd,systemd-sysv,dbus,iproute2,procps,bind9-dnsutils,curl", "bookworm"}

// The longest a boot with its checks may take, and the whole test.
const (
	bootTimeout = 6 * time.Minute
	testTimeout = 14 * time.Minute
)

func TestBoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the boot test needs root (mmdebstrap, systemd-nspawn): run make test as root, as CI does")
	}
	for _, tool := range []string{"mmdebstrap", "systemd-nspawn", "journalctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run .ci/deps (it installs mmdebstrap and systemd-container)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The tree is a few hundred MB: on disk, not in a tmpfs.
	work, err := os.MkdirTemp("/var/tmp", "ringfront-boottest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(t, work) })
	start := time.Now()

	// The packages: the release, and an upgrade of it.
	versionA := strings.TrimSpace(run(t, ctx, repo, "make", "-s", "version"))
	debA := strings.TrimSpace(run(t, ctx, repo, "packaging/version", "--deb", versionA))
	versionB, debB := versionA+"+upgrade", debA+"+upgrade"
	for _, b := range []struct{ dir, version, deb string }{{"a", versionA, debA}, {"b", versionB, debB}} {
		run(t, ctx, repo, "make", "-s", "deb", "VERSION="+b.version, "DEB_VERSION="+b.deb,
			"BIN="+filepath.Join(work, "bin-"+b.dir), "STAGE="+filepath.Join(work, "stage-"+b.dir),
			"DIST="+filepath.Join(work, "root", "root", "boottest", b.dir))
	}
	t.Logf("packages %s and %s built in %.0f s", debA, debB, time.Since(start).Seconds())
	t.Run("make install installs the packages' tree", func(t *testing.T) {
		dest := filepath.Join(work, "destdir")
		run(t, ctx, repo, "make", "-s", "install", "VERSION="+versionA, "DEB_VERSION="+debA,
			"BIN="+filepath.Join(work, "bin-a"), "STAGE="+filepath.Join(work, "stage-a"), "DESTDIR="+dest)
		debs, err := filepath.Glob(filepath.Join(work, "root", "root", "boottest", "a", "*.deb"))
		if err != nil || len(debs) != 3 {
			t.Fatalf("packages: %v, %v", debs, err)
		}
		want := map[string]bool{}
		for _, deb := range debs {
			for line := range strings.Lines(run(t, ctx, "/", "dpkg-deb", "-c", deb)) {
				f := strings.Fields(line) // mode owner size date time path
				if len(f) == 6 {
					want[f[0]+" "+strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = true
				}
			}
		}
		if len(want) < 30 {
			t.Fatalf("dpkg-deb -c listed only %d entries", len(want))
		}
		got := map[string]bool{}
		err = filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
			if err != nil || path == dest {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			got[fi.Mode().String()+" "+strings.TrimPrefix(path, dest)] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("make install's tree differs from the packages' (-packages +make install):\n%s", diff)
		}
	})

	// The tree: a copy of the cached one, with the checks in it.
	step := time.Now()
	base, made := cachedTree(t, ctx)
	root := filepath.Join(work, "root")
	run(t, ctx, "/", "cp", "-a", "--reflink=auto", base+"/.", root)
	t.Logf("tree ready in %.0f s (%s)", time.Since(step).Seconds(), made)
	bt := filepath.Join(root, "root", "boottest")
	copyFile(t, "checks.sh", filepath.Join(bt, "checks.sh"), 0o755)
	env := fmt.Sprintf("VERSION_A=%q\nVERSION_B=%q\n", versionA, versionB)
	if err := os.WriteFile(filepath.Join(bt, "env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "etc", "systemd", "system", "ringfront-boottest.service")
	copyFile(t, "ringfront-boottest.service", unit, 0o644)
	wants := filepath.Join(root, "etc", "systemd", "system", "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/ringfront-boottest.service", filepath.Join(wants, "ringfront-boottest.service")); err != nil {
		t.Fatal(err)
	}

	// Boot it. The checks power the machine off; a boot that outlives
	// bootTimeout gets SIGTERM (nspawn shuts the machine down), then
	// SIGKILL.
	step = time.Now()
	bctx, bcancel := context.WithTimeout(ctx, bootTimeout)
	defer bcancel()
	console, err := os.Create(filepath.Join(work, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	boot := exec.CommandContext(bctx, "systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit",
		"--private-network", "--console=pipe", fmt.Sprintf("--machine=rf-boottest-%d", os.Getpid()))
	boot.Stdout, boot.Stderr = console, console
	boot.Cancel = func() error { return boot.Process.Signal(syscall.SIGTERM) }
	boot.WaitDelay = 20 * time.Second
	bootErr := boot.Run()
	t.Logf("boot, checks and power-off took %.0f s", time.Since(step).Seconds())

	journal := journalOf(ctx, root)
	if dir := os.Getenv("ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "boottest-journal.txt"), journal, 0o644)
		if b, err := os.ReadFile(filepath.Join(work, "console.log")); err == nil {
			os.WriteFile(filepath.Join(dir, "boottest-console.txt"), b, 0o644)
		}
	}
	results, err := os.ReadFile(filepath.Join(bt, "results"))
	finished := err == nil && bytes.HasSuffix(results, []byte("done\n"))
	for line := range strings.Lines(string(results)) {
		line = strings.TrimSpace(line)
		verdict, rest, _ := strings.Cut(line, " ")
		switch verdict {
		case "ok":
			t.Run(rest, func(t *testing.T) {})
		case "FAIL":
			name, why, _ := strings.Cut(rest, ": ")
			t.Run(name, func(t *testing.T) { t.Error(why) })
		}
	}
	// The journal, read from outside, agrees: each daemon said which key
	// it did not know.
	for _, d := range []string{"dnslb", "vipwatch", "appnode"} {
		if key := "bogus_" + d + "_key: unknown key"; finished && !bytes.Contains(journal, []byte(key)) {
			t.Errorf("the journal (journalctl -D) lacks %q", key)
		}
	}
	if bootErr != nil || !finished || t.Failed() {
		if bootErr != nil {
			t.Errorf("systemd-nspawn: %v (after %.0f s)", bootErr, time.Since(step).Seconds())
		}
		if !finished {
			t.Errorf("the checks did not finish (results: %v)", err)
		}
		t.Logf("console, last lines:\n%s", tail(readFile(filepath.Join(work, "console.log")), 60))
		t.Logf("journal of the units, last lines:\n%s", tail(journal, 150))
	}
	t.Logf("boot test took %.0f s in all", time.Since(start).Seconds())
}

// cachedTree returns the cached Debian tree, made first if it is missing
// (into a temporary name, renamed when complete, so an interrupted make
// leaves no half tree behind).
func cachedTree(t *testing.T, ctx context.Context) (dir, how string) {
	cache := os.Getenv("BOOTTEST_CACHE")
	if cache == "" {
		cache = "/var/cache/ringfront/boottest"
	}
	sum := sha256.Sum256([]byte(strings.Join(treeArgs, " ")))
	dir = filepath.Join(cache, "bookworm-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(dir, "usr", "lib", "systemd", "systemd")); err == nil {
		return dir, "cached in " + dir
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "usr", "lib", "systemd", "systemd")); err == nil {
		return dir, "cached in " + dir // made by another run meanwhile
	}
	start := time.Now()
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	os.RemoveAll(dir)
	defer os.RemoveAll(tmp)
	run(t, ctx, "/", "mmdebstrap", append(append([]string{"--quiet"}, treeArgs...), tmp)...)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir, fmt.Sprintf("made by mmdebstrap in %.0f s, cached in %s", time.Since(start).Seconds(), dir)
}

// run runs a command in dir and returns its output; a failure ends the
// test with the output.
func run(t *testing.T, ctx context.Context, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if name == "make" {
		cmd.Env = ownMake()
		cmd.Args = append([]string{"make", "--no-print-directory"}, args...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// ownMake is the environment for a make of the test's own: without the
// variables of a make that runs the test (make test), which would print
// directories into the output and pass its flags on.
func ownMake() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
		default:
			env = append(env, kv)
		}
	}
	return env
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// journalOf reads the booted tree's journal for the ringfront units.
func journalOf(ctx context.Context, root string) []byte {
	cmd := exec.CommandContext(ctx, "journalctl", "-D", filepath.Join(root, "var", "log", "journal"), "--no-pager",
		"-o", "short-monotonic", "-u", "dnslb", "-u", "vipwatch", "-u", "appnode", "-u", "ringfront-boottest")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Appendf(out, "journalctl: %v\n", err)
	}
	return out
}

// removeTree deletes the run's folder, after checking that nothing is
// still mounted inside it (a mount would take the host's files with it).
func removeTree(t *testing.T, dir string) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(mounts))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
				t.Errorf("%s is still mounted: leaving %s in place", f[4], dir)
				return
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removing %s: %v", dir, err)
	}
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
