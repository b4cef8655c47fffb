from unseen.v1 import align_pb2 as _align_pb2
from unseen.v1 import catalog_pb2 as _catalog_pb2
from unseen.v1 import crypto_pb2 as _crypto_pb2
from unseen.v1 import query_pb2 as _query_pb2
from unseen.v1 import score_pb2 as _score_pb2
from unseen.v1 import train_pb2 as _train_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
