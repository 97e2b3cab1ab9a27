package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are the PEM files of a throw-away private CA and what it signed,
// for TLS tests on loopback.
type Certs struct {
	// CA signed Cert (valid for 127.0.0.1 and localhost, as a server and as
	// a client), Expired (the same, but expired) and WrongHost (valid only
	// for another host name).
	CA, Cert, Key           string
	Expired, ExpiredKey     string
	WrongHost, WrongHostKey string
	// OtherCA signed nothing here: a client trusting it trusts no broker.
	OtherCA string
}

// WriteCerts makes a CA and its certificates in a temporary directory.
func WriteCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caPEM := newCA(t, "procq test CA")
	_, _, otherPEM := newCA(t, "another CA")
	c := &Certs{CA: write(t, dir, "ca.pem", caPEM), OtherCA: write(t, dir, "other-ca.pem", otherPEM)}
	now := time.Now()
	loopback := func(tmpl *x509.Certificate) {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	c.Cert, c.Key = leaf(t, dir, "node", caKey, caCert, now.Add(-time.Hour), now.Add(24*time.Hour), loopback)
	c.Expired, c.ExpiredKey = leaf(t, dir, "expired", caKey, caCert, now.Add(-48*time.Hour), now.Add(-24*time.Hour), loopback)
	c.WrongHost, c.WrongHostKey = leaf(t, dir, "wronghost", caKey, caCert, now.Add(-time.Hour), now.Add(24*time.Hour),
		func(tmpl *x509.Certificate) { tmpl.DNSNames = []string{"broker.invalid"} })
	return c
}

func newCA(t testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// leaf writes a certificate for both ends of a TLS link, and its key.
func leaf(t testing.TB, dir, name string, caKey *ecdsa.PrivateKey, ca *x509.Certificate, from, to time.Time, hosts func(*x509.Certificate)) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: "procq " + name},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	hosts(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return write(t, dir, name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		write(t, dir, name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func write(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
