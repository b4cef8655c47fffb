from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class AlignRequest(_message.Message):
    __slots__ = ("holder", "table", "column", "key_id", "request", "vouchers")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    table: str
    column: str
    key_id: str
    request: bytes
    vouchers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, holder: _Optional[str] = ..., table: _Optional[str] = ..., column: _Optional[str] = ..., key_id: _Optional[str] = ..., request: _Optional[bytes] = ..., vouchers: _Optional[_Iterable[str]] = ...) -> None: ...

class AlignReply(_message.Message):
    __slots__ = ("holder", "setup", "response", "holder_size", "receipts")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    SETUP_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    setup: bytes
    response: bytes
    holder_size: int
    receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, holder: _Optional[str] = ..., setup: _Optional[bytes] = ..., response: _Optional[bytes] = ..., holder_size: _Optional[int] = ..., receipts: _Optional[_Iterable[str]] = ...) -> None: ...
