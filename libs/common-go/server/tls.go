package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"acme.example/common/settings"
)

// reloadingCertificates is the TLS configuration of each new handshake, read again when a
// file changed (acme_common.certificates): renewed certificates need no restart; a broken
// replacement is logged as an ERROR, once, and ignored (new connections keep the last good
// certificate).
type reloadingCertificates struct {
	cert, key, clientCA string
	log                 *slog.Logger

	mu      sync.Mutex
	stamp   string
	current *tls.Config
	broken  string // the stamp last reported broken
}

func newReloadingCertificates(cert, key, clientCA string, log *slog.Logger) (*reloadingCertificates, error) {
	r := &reloadingCertificates{cert: cert, key: key, clientCA: clientCA, log: log}
	r.stamp = r.stampNow()
	config, err := r.load()
	if err != nil {
		return nil, err
	}
	r.current = config
	return r, nil
}

func (r *reloadingCertificates) paths() []string {
	if r.clientCA == "" {
		return []string{r.cert, r.key}
	}
	return []string{r.cert, r.key, r.clientCA}
}

// stampNow: (size, mtime) per file, what changes when one is replaced or rewritten.
func (r *reloadingCertificates) stampNow() string {
	stamp := ""
	for _, path := range r.paths() {
		if info, err := os.Stat(path); err == nil {
			stamp += fmt.Sprintf("%d:%d;", info.Size(), info.ModTime().UnixNano())
		} else {
			stamp += "missing;"
		}
	}
	return stamp
}

func (r *reloadingCertificates) load() (*tls.Config, error) {
	if err := settings.CheckPair(r.cert, r.key); err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return nil, err
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
	}
	if r.clientCA != "" {
		if err := settings.CheckCABundle(r.clientCA); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(r.clientCA)
		if err != nil {
			return nil, err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(data)
		config.ClientCAs = roots
		config.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return config, nil
}

func (r *reloadingCertificates) forHandshake(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp := r.stampNow()
	if stamp == r.stamp || stamp == r.broken {
		return r.current, nil
	}
	config, err := r.load()
	if err != nil {
		r.broken = stamp
		r.log.Error("new TLS files are broken; keeping the previous ones", slog.String("error", err.Error()))
		return r.current, nil
	}
	r.stamp, r.current, r.broken = stamp, config, ""
	r.log.Info("TLS files reloaded", slog.Time("at", time.Now()))
	return config, nil
}

// serverCredentials: TLS (mTLS with a client CA) when a certificate is configured, else nil.
func serverCredentials(s *settings.Settings, log *slog.Logger) (credentials.TransportCredentials, error) {
	if s.TLSCertFile == "" {
		return nil, nil
	}
	certificates, err := newReloadingCertificates(s.TLSCertFile, s.TLSKeyFile, s.TLSClientCAFile, log)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		GetConfigForClient: certificates.forHandshake,
	}), nil
}
