package main

// ESO's own template functions (external-secrets runtime/template/v2), written here from their
// documented behaviour on the Go libraries ESO uses: sigs.k8s.io/yaml (toYaml/fromYaml),
// encoding/pem and crypto/x509 (filterPEM, filterCertChain, certSANs) and
// software.sslmate.com/src/go-pkcs12 (pkcs12key/pkcs12cert). They join the "template" mode's
// function map. Functions whose output is random (the PKCS#12 encoders) are checked against
// openssl instead.

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"hash"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

func init() {
	templateFuncs["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	templateFuncs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	templateFuncs["filterPEM"] = oracleFilterPEM
	templateFuncs["filterCertChain"] = oracleFilterCertChain
	templateFuncs["certSANs"] = oracleCertSANs
	templateFuncs["pkcs12key"] = func(in string) (string, error) { return oracleP12Key("", in) }
	templateFuncs["pkcs12keyPass"] = oracleP12Key
	templateFuncs["pkcs12cert"] = func(in string) (string, error) { return oracleP12Cert("", in) }
	templateFuncs["pkcs12certPass"] = oracleP12Cert
	templateFuncs["rsaDecrypt"] = oracleRSADecrypt
	// ESO's sprig (3.3) takes the hash algorithm as a third argument; Debian's 3.2.3 does not.
	templateFuncs["htpasswd"] = func(user, password, algorithm string) string {
		if strings.Contains(user, ":") {
			return "invalid username: " + user
		}
		if algorithm == "sha" {
			sum := sha1.Sum([]byte(password))
			return user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:])
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return "failed to encrypt string with bcrypt: " + err.Error()
		}
		return user + ":" + string(hash)
	}
	// Not a template function of ESO's: lets tests check a bcrypt hash with Go's own bcrypt.
	templateFuncs["oracleBcryptMatches"] = func(hash, password string) bool {
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	}
}

func pemString(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

func afterFirstBegin(s string) string {
	if i := strings.Index(s, "-----BEGIN"); i >= 0 {
		return s[i:]
	}
	return s
}

func oracleFilterPEM(kind, input string) (string, error) {
	rest := []byte(afterFirstBegin(input))
	var out bytes.Buffer
	for {
		block, next := pem.Decode(rest)
		if block == nil {
			break
		}
		rest = next
		if strings.EqualFold(block.Type, kind) {
			if err := pem.Encode(&out, block); err != nil {
				return "", err
			}
		}
	}
	if out.Len() == 0 && len(rest) > 0 {
		return "", errors.New("error filtering pem: found junk")
	}
	return out.String(), nil
}

// orderChain links certificates leaf -> root by authority/subject key identifiers.
func orderChain(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			break
		}
		data = rest
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	parent := make([]int, len(certs))
	isParent := make([]bool, len(certs))
	for i := range certs {
		parent[i] = -1
		for j := range certs {
			if i != j && bytes.Equal(certs[i].AuthorityKeyId, certs[j].SubjectKeyId) {
				isParent[j] = true
				parent[i] = j
				break
			}
		}
	}
	leaf := -1
	for i := range certs {
		if !isParent[i] {
			if leaf >= 0 {
				return nil, errors.New("found multiple leaf or disjunct certificates")
			}
			leaf = i
		}
	}
	if leaf < 0 {
		return nil, errors.New("no leaf certificate found")
	}
	var out []*x509.Certificate
	for at := leaf; at >= 0; at = parent[at] {
		if len(out) >= len(certs) {
			return nil, errors.New("constructing chain resulted in cycle")
		}
		out = append(out, certs[at])
	}
	return out, nil
}

func rootLike(c *x509.Certificate) bool {
	return c.AuthorityKeyId == nil || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId)
}

func oracleFilterCertChain(which, input string) (string, error) {
	chain, err := orderChain([]byte(input))
	if err != nil {
		return "", err
	}
	switch which {
	case "leaf":
		if c := chain[0]; c.AuthorityKeyId != nil && !bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId) {
			return pemString("CERTIFICATE", c.Raw), nil
		}
	case "intermediate":
		out := ""
		for i := 1; i < len(chain) && !rootLike(chain[i]); i++ {
			out += pemString("CERTIFICATE", chain[i].Raw)
		}
		return out, nil
	case "root":
		if c := chain[len(chain)-1]; rootLike(c) {
			return pemString("CERTIFICATE", c.Raw), nil
		}
	}
	return "", nil
}

func oracleCertSANs(input string) ([]string, error) {
	block, _ := pem.Decode([]byte(afterFirstBegin(input)))
	if block == nil {
		return nil, errors.New("failed to decode PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out, nil
}

func oracleP12Key(pass, input string) (string, error) {
	key, _, _, err := pkcs12.DecodeChain([]byte(input), pass)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	return pemString("PRIVATE KEY", der), nil
}

func oracleP12Cert(pass, input string) (string, error) {
	_, leaf, cas, err := pkcs12.DecodeChain([]byte(input), pass)
	if err != nil {
		return "", err
	}
	all := pemString("CERTIFICATE", leaf.Raw)
	for _, c := range cas {
		all += pemString("CERTIFICATE", c.Raw)
	}
	chain, err := orderChain([]byte(all))
	if err != nil {
		return all, nil
	}
	out := ""
	for _, c := range chain {
		out += pemString("CERTIFICATE", c.Raw)
	}
	return out, nil
}

func oracleRSADecrypt(scheme, hashName, in, key string) (string, error) {
	switch scheme {
	case "None":
		return in, nil
	case "RSA-OAEP":
	default:
		return "", errors.New("decryption scheme is not supported")
	}
	block, _ := pem.Decode([]byte(key))
	if block == nil {
		return "", errors.New("failed to decode PEM block")
	}
	var parsed interface{}
	var err error
	if parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		if parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			if parsed, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
				return "", errors.New("could not parse private key")
			}
		}
	}
	k, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return "", errors.New("could not parse RSA private key")
	}
	var h hash.Hash
	switch hashName {
	case "SHA1":
		h = sha1.New()
	case "SHA512":
		h = sha512.New()
	default:
		h = sha256.New()
	}
	out, err := rsa.DecryptOAEP(h, nil, k, []byte(in), nil)
	if err != nil {
		return "", err
	}
	return string(out), nil
}
