from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MaskKey(_message.Message):
    __slots__ = ("public_key", "certificate", "signature")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    certificate: bytes
    signature: bytes
    def __init__(self, public_key: _Optional[bytes] = ..., certificate: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class MaskParticipant(_message.Message):
    __slots__ = ("holder", "key")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    holder: str
    key: MaskKey
    def __init__(self, holder: _Optional[str] = ..., key: _Optional[_Union[MaskKey, _Mapping]] = ...) -> None: ...

class MaskRound(_message.Message):
    __slots__ = ("nonce", "participants", "suppressed_groups")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    participants: _containers.RepeatedCompositeFieldContainer[MaskParticipant]
    suppressed_groups: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, nonce: _Optional[bytes] = ..., participants: _Optional[_Iterable[_Union[MaskParticipant, _Mapping]]] = ..., suppressed_groups: _Optional[_Iterable[int]] = ...) -> None: ...

class PrepareAggregateReply(_message.Message):
    __slots__ = ("query_id", "failing_groups", "receipts", "failing_reasons", "catalog_digest")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    FAILING_GROUPS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    FAILING_REASONS_FIELD_NUMBER: _ClassVar[int]
    CATALOG_DIGEST_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    failing_groups: _containers.RepeatedScalarFieldContainer[int]
    receipts: _containers.RepeatedScalarFieldContainer[str]
    failing_reasons: _containers.RepeatedScalarFieldContainer[str]
    catalog_digest: str
    def __init__(self, query_id: _Optional[str] = ..., failing_groups: _Optional[_Iterable[int]] = ..., receipts: _Optional[_Iterable[str]] = ..., failing_reasons: _Optional[_Iterable[str]] = ..., catalog_digest: _Optional[str] = ...) -> None: ...
