package settings

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The checks of acme_common.pem, made before grpc-go is given the files: a key that is not
// the certificate's, or a client CA bundle holding a certificate that is not a CA, would
// otherwise fail only at the first handshake.

var (
	beginCertificate = []byte("-----BEGIN CERTIFICATE-----")
	endCertificate   = []byte("-----END CERTIFICATE-----")
)

func read(path string) ([]byte, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the file (TLS_*_FILE)
	if err != nil {
		var errno syscall.Errno
		reason := err.Error()
		if errors.As(err, &errno) {
			reason = errno.Error()
		}
		return nil, fmt.Errorf("cannot read %s: %s", path, reason)
	}
	return data, nil
}

// Certificates parses every certificate of a PEM file (a chain or a CA bundle); an error
// naming the file when it holds none, one does not parse or one is cut short.
func Certificates(data []byte, path string) ([]*x509.Certificate, error) {
	count := bytes.Count(data, beginCertificate)
	if count == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	if bytes.Count(data, endCertificate) != count {
		return nil, fmt.Errorf("%s: a PEM certificate is cut short (half-written?)", path)
	}
	var parsed []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		certificate, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid PEM certificate (%w)", path, err)
		}
		parsed = append(parsed, certificate)
	}
	if len(parsed) != count {
		return nil, fmt.Errorf("%s: %d of %d certificates unreadable", path, count-len(parsed), count)
	}
	return parsed, nil
}

// CheckPair fails unless keyPath holds an unencrypted PEM private key of the first
// certificate of certPath.
func CheckPair(certPath, keyPath string) error {
	certData, err := read(certPath)
	if err != nil {
		return err
	}
	keyData, err := read(keyPath)
	if err != nil {
		return err
	}
	chain, err := Certificates(certData, certPath)
	if err != nil {
		return err
	}
	key, err := privateKey(keyData)
	if err != nil {
		return fmt.Errorf("%s: not an unencrypted PEM private key (%w)", keyPath, err)
	}
	public, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !public.Equal(chain[0].PublicKey) {
		return fmt.Errorf("%s is not the private key of the certificate %s", keyPath, certPath)
	}
	return nil
}

func privateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if key, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if signer, ok := key.(crypto.Signer); ok {
			return signer, nil
		}
		return nil, errors.New("unsupported key type")
	}
	if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return key, nil
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s block does not parse", block.Type)
	}
	return key, nil
}

// CheckCABundle fails unless every certificate of path is a CA certificate.
func CheckCABundle(path string) error {
	data, err := read(path)
	if err != nil {
		return err
	}
	certificates, err := Certificates(data, path)
	if err != nil {
		return err
	}
	for _, certificate := range certificates {
		if !certificate.BasicConstraintsValid || !certificate.IsCA {
			return fmt.Errorf("%s: '%s' is not a CA certificate", path, certificate.Subject.String())
		}
	}
	return nil
}
