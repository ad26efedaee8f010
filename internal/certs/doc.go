// Package certs serves a TLS certificate and its key from files an
// operator may replace at any time: [Pair] hands the current certificate
// to every new handshake (tls.Config.GetCertificate), reads the files
// again when they change (checked at most once a second) or when told
// to ([Pair.Reload], on SIGHUP), and keeps the certificate it has when
// the new files are bad. Connections already open are never touched: a
// certificate is only looked at during a handshake.
//
// The key file follows ringfront's rules for secrets
// (config.ReadSecret): a systemd credential, or a file of mode 600 or
// 640; one readable by other users is refused. The certificate is read
// from a credential too when one carries it. systemd's credentials are
// copied once, when the service starts: under systemd a new pair takes a
// restart (a rolling one), not a reload.
package certs
