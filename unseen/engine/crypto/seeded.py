"""Public keys whose random polynomial is expanded from a seed: nothing up the analyst's sleeve.

Why: an RLWE public key is ``(b, a) = (-(a·s + e), a)`` with ``a`` uniform.
Holders re-randomise every partial score by adding a fresh encryption of
zero under the analyst's public key, ``(u·b + e0, u·a + e1)``, and that hides
the partial only if ``a`` is random. SEAL's load checks a key's parameters,
not its values: an analyst could register ``(b, a) = (-s, 1)``, which
decrypts correctly, and the holder's "fresh" second polynomial would become
``u + e1`` — small, rounded to zero by the division by the special prime —
so the partial's second polynomial would leave the holder unhidden and a
guess of its features could be confirmed exactly. A uniformity test does not
help: a trapdoored ``a`` looks uniform.

So the analyst registers its public key in SEAL's *seeded* form: the first
polynomial ``b`` in full and, in place of ``a``, the 64-byte seed SEAL's own
PRNG expands it from (``Ciphertext::load_members`` re-creates ``a`` with
``sample_poly_uniform`` from the seed). Nodes accept only that form, so ``a``
is always ``PRNG(seed)``; finding a seed whose expansion carries a trapdoor
is as hard as breaking the PRNG (Blake2xb or SHAKE-256). ``b`` stays the
analyst's choice, which is harmless: a wrong ``b`` only keeps the analyst from
decrypting.

How the analyst gets a seeded key: ``tenseal.sealapi`` binds
``KeyGenerator::create_public_key`` but not the ``Serializable<PublicKey>``
it returns, so the seed cannot be read from there. SEAL's key generation
draws ``a``'s seed as the first 64 bytes of the encryption parameters'
random generator; :func:`seeded_public_context` runs SEAL's key generation
with a Blake2xb generator seeded from ``os.urandom`` (secret: it also draws
the error ``e``), reads those first 64 bytes from a second generator with the
same seed, writes the key in seeded form and loads it back: the analyst's
side refuses to go on unless SEAL's expansion reproduces the generated key
word for word. Nothing here samples, multiplies or hashes by hand.

Serialisation (SEAL 4, uncompressed): the ``PublicKey`` is a ``Ciphertext``
(header; parms_id, NTT flag, size 2, N, limbs, scale, correction factor;
then a ``DynArray`` of ``N·limbs`` words — one polynomial, which is what
tells SEAL to expand — then a ``UniformRandomGeneratorInfo``: header, PRNG
type, seed). It travels inside TenSEAL's context (protobuf field
``public_context.public_key``), which TenSEAL hands to SEAL's loader.
"""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from unseen.engine.errors import CryptoError

__all__ = [
    "check_seeded",
    "load_context",
    "public_key_field",
    "seeded_public_context",
    "with_public_key",
]

# SEAL's serialisation header: magic 0xA15E, header size 16, version, compression
# mode, two reserved bytes, then the total size.
_HEADER = struct.Struct("<HBBBBHQ")
_MAGIC = 0xA15E
_NONE = 0
_PARMS_ID = 32
# parms_id, NTT flag (1 byte), size, N, limbs (3 words), scale, correction factor.
_MEMBERS = _PARMS_ID + 1 + 3 * 8 + 8 + 8
_SEED_BYTES = 64
# prng_type: 1 Blake2xb, 2 SHAKE-256 (0 "unknown" would not expand).
_PRNG_TYPES = (1, 2)
_BLAKE2XB = 1
_PUBLIC_CONTEXT = 2  # TenSEALContextProto.public_context
_PUBLIC_KEY = 1  # TenSEALPublicProto.public_key
_PRIVATE_CONTEXT = 3  # TenSEALContextProto.private_context: the secret key

_SHM = "/dev/shm"  # noqa: S108
_SCRATCH = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


def seeded_public_context(ctx: ts.Context) -> bytes:
    """``ctx``'s public context (public key only) with a fresh key in seeded form.

    The key is a new encryption of zero under ``ctx``'s secret key (the
    context's own public key is not reused: its seed is gone); it decrypts
    under the same secret key as every other.
    """
    seal = ctx.seal_context().data
    key_data = seal.key_context_data()
    seed, key = _generate(seal, ctx.secret_key().data)
    blob = _seeded_blob(key_data, key.data(), seed, _saved_version(seal))
    expanded = _load_key(seal, blob)
    if _saved(expanded) != _saved(key):
        raise CryptoError("SEAL did not expand the public key's seed to the key it generated")
    base = bytes(
        ctx.serialize(
            save_public_key=False,
            save_secret_key=False,
            save_galois_keys=False,
            save_relin_keys=False,
        )
    )
    return with_public_key(base, blob)


def load_context(data: bytes) -> ts.Context:
    """Load a TenSEAL context whose public key must be in seeded form.

    Refused, each with a readable reason: bytes that are not a TenSEAL context,
    a context carrying a secret key, a context without a public key or with
    more than one, and a public key stored in full (its ``a`` could be anything
    the sender chose). The key TenSEAL loaded is then compared with SEAL's own
    expansion of the seed.
    """
    try:
        private = any(number == _PRIVATE_CONTEXT for number, *_ in _fields(data))
        blob = public_key_field(data)
    except (IndexError, ValueError) as exc:
        raise CryptoError("public context does not parse as a TenSEAL context") from exc
    if private:
        raise CryptoError("refused a context that carries a secret key; send the public part only")
    check_seeded(blob)
    try:
        ctx = ts.context_from(data)
    except Exception as exc:
        raise CryptoError("public context does not parse as a TenSEAL context") from exc
    seal = ctx.seal_context().data
    try:
        expanded = _load_key(seal, blob)
    except Exception as exc:
        raise CryptoError("the seeded public key does not load under its context") from exc
    if not ctx.has_public_key() or _saved(expanded) != _saved(ctx.public_key().data):
        raise CryptoError("the context's public key is not the one expanded from its seed")
    return ctx


def check_seeded(blob: bytes) -> None:
    """Refuse a serialised SEAL public key unless it is exactly the seeded form."""
    refusal = CryptoError(
        "refused a public key stored in full: register its random half as SEAL's "
        "seed (keys made by unseen keys new since issue 11 are)"
    )
    at, members_end = _header(blob, 0, refusal)
    if members_end != len(blob) or at + _MEMBERS > len(blob):
        raise refusal
    ntt = blob[at + _PARMS_ID]
    size, degree, limbs = struct.unpack_from("<3Q", blob, at + _PARMS_ID + 1)
    if ntt != 1 or size != 2 or not 0 < degree <= 1 << 17 or not 0 < limbs <= 64:
        raise refusal  # keys are kept in NTT form, as SEAL generates them
    at += _MEMBERS
    array_at, array_end = _header(blob, at, refusal)
    if array_at + 8 > array_end:
        raise refusal
    (count,) = struct.unpack_from("<Q", blob, array_at)
    if count != degree * limbs or array_at + 8 + 8 * count != array_end:
        raise refusal  # two polynomials: a stored in full
    info_at, info_end = _header(blob, array_end, refusal)
    if info_end != len(blob) or info_end - info_at != 1 + _SEED_BYTES:
        raise refusal
    if blob[info_at] not in _PRNG_TYPES:
        raise refusal


def _header(blob: bytes, at: int, refusal: CryptoError) -> tuple[int, int]:
    """Start of the members after a SEAL header at ``at``, and the object's end."""
    if at + _HEADER.size > len(blob):
        raise refusal
    magic, size, _major, _minor, mode, _reserved, total = _HEADER.unpack_from(blob, at)
    if magic != _MAGIC or size != _HEADER.size or mode != _NONE or at + total > len(blob):
        raise refusal
    return at + _HEADER.size, at + total


def _generate(
    seal: sealapi.SEALContext, secret: sealapi.SecretKey
) -> tuple[bytes, sealapi.PublicKey]:
    """SEAL's key generation with a generator whose first 64 bytes we can read again."""
    words = np.frombuffer(os.urandom(_SEED_BYTES), dtype="<u8").tolist()
    parms = seal.key_context_data().parms()
    own = sealapi.EncryptionParameters(parms.scheme())
    own.set_poly_modulus_degree(parms.poly_modulus_degree())
    own.set_coeff_modulus(parms.coeff_modulus())
    if getattr(parms.scheme(), "name", "") != "CKKS":
        own.set_plain_modulus(parms.plain_modulus())
    own.set_random_generator(sealapi.Blake2xbPRNGFactory(words))
    # No security level of its own: these are the parameters of a context that
    # already exists (nodes judge security when they load the key).
    twin = sealapi.SEALContext(own, True, sealapi.SEC_LEVEL_TYPE.NONE)
    if list(twin.key_parms_id()) != list(seal.key_parms_id()):
        raise CryptoError("could not rebuild the key's encryption parameters")
    key = sealapi.PublicKey()
    sealapi.KeyGenerator(twin, secret).create_public_key(key)
    prng = sealapi.Blake2xbPRNGFactory(words).create()
    seed = np.asarray([prng.generate() for _ in range(_SEED_BYTES // 4)], dtype="<u4")
    return seed.tobytes(), key


def _seeded_blob(
    key_data: sealapi.SEALContext.ContextData,
    cipher: sealapi.Ciphertext,
    seed: bytes,
    version: bytes,
) -> bytes:
    """The key in SEAL's seeded serialisation: ``b`` in full, then ``a``'s seed."""
    degree = cipher.poly_modulus_degree()
    limbs = cipher.coeff_modulus_size()
    first = np.fromiter((cipher[i] for i in range(degree * limbs)), dtype="<u8")
    array = np.uint64(first.size).tobytes() + first.tobytes()
    info = bytes([_BLAKE2XB]) + seed
    members = b"".join(
        (
            np.asarray(key_data.parms_id(), dtype="<u8").tobytes(),
            b"\x01",  # NTT form, as SEAL keeps keys
            np.asarray([2, degree, limbs], dtype="<u8").tobytes(),
            np.float64(1.0).tobytes(),
            np.uint64(1).tobytes(),  # correction factor
            _framed(version, array),
            _framed(version, info),
        )
    )
    return _framed(version, members)


def _framed(version: bytes, members: bytes) -> bytes:
    total = _HEADER.size + len(members)
    return _HEADER.pack(_MAGIC, _HEADER.size, version[0], version[1], _NONE, 0, total) + members


def _scratch() -> tuple[int, str]:
    return tempfile.mkstemp(prefix="unseen-pk-", dir=_SCRATCH)


def _saved_version(seal: sealapi.SEALContext) -> bytes:
    """SEAL's serialisation version bytes, read from a ciphertext it saved."""
    fd, path = _scratch()
    os.close(fd)
    try:
        sealapi.Ciphertext(seal).save(path)
        with open(path, "rb") as handle:
            head = handle.read(_HEADER.size)
    finally:
        os.unlink(path)
    return head[3:5]


def _load_key(seal: sealapi.SEALContext, blob: bytes) -> sealapi.PublicKey:
    """SEAL's load of a serialised key (the binding reads from a path only)."""
    fd, path = _scratch()
    try:
        os.write(fd, blob)
    finally:
        os.close(fd)
    try:
        key = sealapi.PublicKey()
        key.load(seal, path)
    finally:
        os.unlink(path)
    return key


def _saved(key: sealapi.PublicKey) -> bytes:
    """A key's SEAL serialisation (deterministic: equal keys, equal bytes)."""
    fd, path = _scratch()
    os.close(fd)
    try:
        key.save(path)
        with open(path, "rb") as handle:
            return handle.read()
    finally:
        os.unlink(path)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """A protobuf message's fields: (number, start, value start, end), in order."""
    fields = []
    at = 0
    while at < len(data):
        start = at
        tag, at = _read_varint(data, at)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("protobuf field number 0")
        if wire == 0:
            _, end = _read_varint(data, at)
            value = at
        elif wire == 1:
            value, end = at, at + 8
        elif wire == 2:
            length, value = _read_varint(data, at)
            end = value + length
        elif wire == 5:
            value, end = at, at + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        if end > len(data):
            raise ValueError("truncated protobuf")
        fields.append((number, start, value, end))
        at = end
    return fields


def _only(fields: list[tuple[int, int, int, int]], number: int) -> tuple[int, int, int, int]:
    found = [f for f in fields if f[0] == number]
    if not found:
        raise CryptoError("public context has no public key")
    if len(found) > 1:
        # Protobuf merges repeats: the key checked must be the key loaded.
        raise CryptoError("public context holds more than one public key")
    return found[0]


def public_key_field(data: bytes) -> bytes:
    """The serialised public key inside TenSEAL context bytes (exactly one, or refused)."""
    _, _, value, end = _only(_fields(data), _PUBLIC_CONTEXT)
    public = data[value:end]
    _, _, key_at, key_end = _only(_fields(public), _PUBLIC_KEY)
    return public[key_at:key_end]


def with_public_key(data: bytes, blob: bytes) -> bytes:
    """TenSEAL context bytes (saved without a public key) with ``blob`` as its key."""
    _, start, value, end = _only(_fields(data), _PUBLIC_CONTEXT)
    public = b"\x0a" + _varint(len(blob)) + blob + data[value:end]
    tag = bytes([_PUBLIC_CONTEXT << 3 | 2])
    return data[:start] + tag + _varint(len(public)) + public + data[end:]
