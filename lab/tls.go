package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/internal/certs"
)

// The lab's TLS: `lab up` makes a CA in run/tls and issues every
// frontend a certificate from it (for www.example.org, the frontend's
// addresses, every VIP — a VIP moves to the partner — and 127.0.0.1,
// which vipwatch's track probes). appnode serves HTTPS on 443 with it
// (and 308s from 80); dnslb and vipwatch check it over HTTPS, trusting
// the lab CA through SSL_CERT_FILE; the client load and curl trust it
// by name. Members talk TLS among themselves with certificates derived
// from the cluster secret.

// certValidity is how long a lab certificate is valid: a lab runs for
// hours, not days.
const certValidity = 7 * 24 * time.Hour

// caFile is the lab CA's certificate, which every client of the lab
// trusts; set from -run by main.
var caFile string

func (l *lab) tlsDir() string { return filepath.Join(l.run, "tls") }

func (l *lab) certFiles(fe string) (cert, key string) {
	return filepath.Join(l.tlsDir(), fe+".crt"), filepath.Join(l.tlsDir(), fe+".key")
}

// trustEnv makes a daemon's HTTPS health checks trust the lab CA.
func trustEnv() []string { return []string{"SSL_CERT_FILE=" + caFile} }

// certHosts are the names and addresses a frontend's certificate
// carries.
func certHosts(fe host) []string {
	out := []string{"www.example.org", fe.ip, fe.ip6, "127.0.0.1"}
	return append(out, vips()...)
}

// makeCerts makes the lab CA and every frontend's certificate.
func (l *lab) makeCerts() error {
	if err := os.MkdirAll(l.tlsDir(), 0o700); err != nil {
		return err
	}
	ca, err := certs.NewAuthority("ringfront lab CA")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(caFile, filepath.Join(l.tlsDir(), "ca.key")); err != nil {
		return err
	}
	return l.issueAll(ca)
}

// issueAll issues every frontend a new certificate from ca, each
// written into place by rename (the certificate, then the key).
func (l *lab) issueAll(ca *certs.Authority) error {
	for _, fe := range frontends() {
		cert, key := l.certFiles(fe.name)
		if err := ca.IssueFiles(certHosts(fe), certValidity, cert, key); err != nil {
			return fmt.Errorf("certificate of %s: %w", fe.name, err)
		}
	}
	return nil
}

// rotateCerts issues every frontend a new certificate from the lab CA
// and returns the new serial numbers by frontend.
func (l *lab) rotateCerts() (map[string]string, error) {
	ca, err := certs.LoadAuthority(caFile, filepath.Join(l.tlsDir(), "ca.key"))
	if err != nil {
		return nil, err
	}
	if err := l.issueAll(ca); err != nil {
		return nil, err
	}
	serials := map[string]string{}
	for _, fe := range frontends() {
		cert, _ := l.certFiles(fe.name)
		b, err := os.ReadFile(cert)
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", cert)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		serials[fe.name] = c.SerialNumber.Text(16)
	}
	return serials, nil
}

// served asks, from the client namespace, which certificate the
// frontend serves on 443 (its serial, hex).
func (l *lab) served(fe host) (string, error) {
	out, err := inNS("client", filepath.Join(l.bin, "lab"), "-run", l.run, "served", net.JoinHostPort(fe.ip, "443"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// runServed is `lab served ADDR`: the serial of the certificate ADDR
// serves, verified against the lab CA. Run it in the client namespace.
func runServed(args []string) error {
	fs := flag.NewFlagSet("served", flag.ExitOnError)
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: lab served HOST:PORT")
	}
	pool, err := labPool()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "www.example.org"}}
	c, err := d.DialContext(ctx, "tcp", fs.Arg(0))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println(c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Text(16))
	return nil
}

// labPool is a pool with the lab CA.
func labPool() (*x509.CertPool, error) {
	pool, err := client.LoadCA(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w (make lab makes it)", err)
	}
	return pool, nil
}
