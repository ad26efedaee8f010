package nslab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"
)

// ResponderEnv is the environment variable that turns a test or bench
// binary into the responder: its value is the node name to answer with.
const ResponderEnv = "RFVW_RESPONDER"

// Ports the responder listens on, on every address of its namespace.
const (
	HTTPPort = 80
	EchoPort = 7000
)

// MaybeRespond runs the responder and exits if ResponderEnv is set.
// Call it first thing in TestMain or main.
func MaybeRespond() {
	node := os.Getenv(ResponderEnv)
	if node == "" {
		return
	}
	if err := Respond(context.Background(), node); err != nil {
		fmt.Fprintln(os.Stderr, "responder:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Respond answers HTTP GET / and UDP datagrams with node's name until
// ctx is done. A UDP answer is node + " " + the datagram.
func Respond(ctx context.Context, node string) error {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", HTTPPort))
	if err != nil {
		return fmt.Errorf("responder HTTP listener: %w", err)
	}
	pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", EchoPort))
	if err != nil {
		ln.Close()
		return fmt.Errorf("responder UDP listener: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, node)
		}),
		ReadHeaderTimeout: 2 * time.Second,
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ln) })
	g.Go(func() error {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return err
			}
			pc.WriteTo(append([]byte(node+" "), buf[:n]...), from)
		}
	})
	g.Go(func() error {
		<-ctx.Done()
		srv.Close()
		pc.Close()
		return nil
	})
	return g.Wait()
}

// StartResponder runs the responder as node in namespace ns, from the
// running executable (whose main or TestMain must call MaybeRespond).
func (l *Lab) StartResponder(ns, node string) (*Proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := l.Start(ns, "responder-"+node, "env", ResponderEnv+"="+node, exe)
	if err != nil {
		return nil, err
	}
	err = WaitFor(5*time.Second, "the responder in "+ns, func() (bool, error) {
		_, err := l.Run(context.Background(), ns, "curl", "-s", "-m", "1", fmt.Sprintf("http://127.0.0.1:%d/", HTTPPort))
		return err == nil, err
	})
	return p, err
}

// Do runs f on an OS thread that is in namespace ns. Sockets f opens
// stay in ns for their whole life, whatever thread uses them later.
func (l *Lab) Do(ns string, f func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reading own namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", ns, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in ns: leave it locked so that it dies
		// with this goroutine instead of running other code there.
		return fmt.Errorf("leaving namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ferr
}
