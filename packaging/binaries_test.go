// Package packaging holds the tests of what `make build` and `make deb`
// produce; the build itself is the Makefile and the scripts beside this
// file, and boottest/ proves the packages under systemd.
package packaging

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaticVersionedBinaries builds the daemons as `make build` does and
// checks what the README says of them: static (no program interpreter,
// no shared library), and stamped with `git describe` (--version and the
// version command).
func TestStaticVersionedBinaries(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed (apt-get install make)")
	}
	bin := t.TempDir()
	make := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", "-C", ".."}, args...)...)
		// Not the flags of a make that runs this test (make test).
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); name != "MAKEFLAGS" && name != "MFLAGS" && name != "MAKELEVEL" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return string(out)
	}
	version := strings.TrimSpace(make("version"))
	if !strings.HasPrefix(version, "v") {
		t.Fatalf("make version = %q, want a git describe version (v...)", version)
	}
	make("build", "BIN="+bin)
	for _, d := range []string{"dnslb", "vipwatch", "appnode"} {
		t.Run(d, func(t *testing.T) {
			path := filepath.Join(bin, d)
			f, err := elf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s has a program interpreter (PT_INTERP): dynamically linked", d)
				}
			}
			if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
				t.Errorf("%s needs shared libraries (DT_NEEDED) %v, %v", d, libs, err)
			}
			for _, args := range [][]string{{"--version"}, {"version"}} {
				out, err := exec.Command(path, args...).Output()
				if err != nil {
					t.Fatalf("%s %s: %v", d, args[0], err)
				}
				if want := d + " " + version + " (revision "; !strings.HasPrefix(string(out), want) {
					t.Errorf("%s %s = %q, want it to start %q", d, args[0], out, want)
				}
			}
		})
	}
}
