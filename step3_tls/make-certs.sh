#!/bin/sh
# step3_tls/make-certs.sh [DIR]: the key material stage 3 needs, made with the
# openssl command line (default DIR: step3_tls/certs). docs/03-tls.md#make-certs
#
#   ca.key    ca.crt       a local certificate authority (CA) that only this
#                          machine trusts; clients verify the server against it
#   server.key server.crt  the server: CN localhost, SAN DNS:localhost,
#                          IP:127.0.0.1, IP:::1, signed by the CA
#   alice.key  alice.crt   a client certificate (CN alice) for mutual TLS
#
# Keys are EC P-256 and mode 0600; certificates are public (0644). Nothing
# here is a secret worth protecting beyond this machine: it is a tutorial CA.
set -eu

dir=${1:-$(dirname "$0")/certs}
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"
# [docs:umask]
umask 077 # every file we create is private until we say otherwise
# [/docs]

# Extensions a CA puts into the certificates it signs (x509v3_config(5)).
cat >extensions.cnf <<'CNF'
[ca]
basicConstraints     = critical, CA:TRUE, pathlen:0
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[client]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
CNF

# [docs:new-key]
# A new private key: EC on the NIST P-256 curve. genpkey writes it in PKCS#8
# PEM, unencrypted, so the server starts without asking for a passphrase; its
# protection is the file mode (umask 077 above: 0600).
new_key() { # new_key FILE
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}
# [/docs]

# [docs:ca]
# 1. The CA: a key, and a certificate for it signed by itself (issuer =
#    subject). -config takes the [ca] extensions from our file.
new_key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days "$days" \
    -subj "/CN=socket tutorial local CA" -config extensions.cnf -extensions ca
# [/docs]

# [docs:issue]
# 2. A key and certificate for NAME, signed by the CA with section SECTION.
issue() { # issue NAME SUBJECT SECTION
    new_key "$1.key"
    # 2a. A certificate signing request (CSR): "please certify that this
    #     public key belongs to SUBJECT", signed with the new key itself.
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" -config extensions.cnf
    # 2b. The CA checks the CSR's signature and signs a certificate: the
    #     subject and key from the CSR, the extensions from our file (not the
    #     requester's), a random serial number, and a validity period.
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -days "$days" \
        -extfile extensions.cnf -extensions "$3" -out "$1.crt"
    rm -f "$1.csr"
}
issue server "/CN=localhost" server
issue alice "/CN=alice" client
# [/docs]

# 3. Keys stay private; certificates may be read by anyone.
chmod 600 ca.key server.key alice.key
chmod 644 ca.crt server.crt alice.crt
rm -f extensions.cnf

# 4. Check: each certificate verifies against the CA.
openssl verify -CAfile ca.crt server.crt alice.crt
