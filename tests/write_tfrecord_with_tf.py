# ruff: noqa: E501  (the records below are long lines, kept verbatim)
"""Write tests/fixtures/tf_written.tfrecord with TensorFlow's own tf.io.TFRecordWriter, for tests/test_converter.py.

The file is committed: the tests read it without TensorFlow, which is no dependency of the toolkit.
`make tf-fixture` writes it again, from a throwaway venv:

    python3 -m venv .venv-tf && .venv-tf/bin/pip install tensorflow-cpu==2.21.0
    .venv-tf/bin/python tests/write_tfrecord_with_tf.py          # -> tests/fixtures/tf_written.tfrecord

RECORDS are 8 fixed NB101-format records (2 real cells x epochs 4, 108 x 2 repeats, some values
absent, SYNTHETIC labels) made by tools/make_demo_data.py. The test reads the file back with
lib/tfrecord/records.py and converts it; this script checks that TensorFlow reads it too.
"""

import sys
from pathlib import Path

RECORDS = [
    b'["8f76b9179dc60ca07df3f746c9e761fe", 4, "0110000000110000010000000001000001000000010000000", "input,conv3x3-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01ChsJAAAAAAAAAEARTUjIKdGHTkAZ0MRhQFCdyz8KLQkAAAAAAAAQQBHYAFIMgHhfQBkQ6f637KfYPyFNEQ9ku0jRPykv/9q4xgzRPxCKzt8DGWBSA5aC/mVA"]',
    b'["8f76b9179dc60ca07df3f746c9e761fe", 4, "0110000000110000010000000001000001000000010000000", "input,conv3x3-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01CiQJAAAAAAAAAEAZqP0a72ZTzz8hYnub+ZPOwD8pKMdsbxt1wD8KJAkAAAAAAAAQQBHsjR8qjKxeQCEGZndBJNXQPykotsuaUYrQPxCKzt8DGdf/OStgkGVA"]',
    b'["8f76b9179dc60ca07df3f746c9e761fe", 108, "0110000000110000010000000001000001000000010000000", "input,conv3x3-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01Ci0JAAAAAAAAS0ARPtIVdW4xmEAZPVBv3clw7z8hqSz6BNr96j8pvYa/LivR6j8KJAkAAAAAAABbQBki81EVbPPvPyGHX9KGsXnsPymtqQIqzyfsPxCKzt8DGTOXbwf4zK1A"]',
    b'["8f76b9179dc60ca07df3f746c9e761fe", 108, "0110000000110000010000000001000001000000010000000", "input,conv3x3-bn-relu,maxpool3x3,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01ChsJAAAAAAAAS0AZoHiHJWhy7z8pqRtZ7yjQ6j8KLQkAAAAAAABbQBHGqqrC/e+pQBmplaiU8fTvPyGRiV/nf4zsPymevwxizl/sPxCKzt8DGR4AAMgwU6xA"]',
    b'["e60f1556e3be8ca192bd43056ae0f836", 4, "0100000001000100010100000101000001000000010000000", "input,maxpool3x3,maxpool3x3,maxpool3x3,conv1x1-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01ChsJAAAAAAAAAEAhskaltDXwhz8pgWzI66vmbj8KEgkAAAAAAAAQQBngOzb+U6WQPxCLthkZNunRPxMvY0A="]',
    b'["e60f1556e3be8ca192bd43056ae0f836", 4, "0100000001000100010100000101000001000000010000000", "input,maxpool3x3,maxpool3x3,maxpool3x3,conv1x1-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01ChsJAAAAAAAAAEARn5B0X+d7SUAZ4Fdbz5ohoT8KJAkAAAAAAAAQQBFGVP2KXUNaQCEAAAAAAAAAACkAAAAAAAAAABCLthkZyo5+CJ4uY0A="]',
    b'["e60f1556e3be8ca192bd43056ae0f836", 108, "0100000001000100010100000101000001000000010000000", "input,maxpool3x3,maxpool3x3,maxpool3x3,conv1x1-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01CiQJAAAAAAAAS0ARWUFf4T7HlEAZkSx8vjys6j8pAAAAAAAAAAAKLQkAAAAAAABbQBHVF+o2lzilQBlIS4acJ2fvPyEAAAAAAAAAACkAAAAAAAAAABCLthkZn5TyqzI7p0A="]',
    b'["e60f1556e3be8ca192bd43056ae0f836", 108, "0100000001000100010100000101000001000000010000000", "input,maxpool3x3,maxpool3x3,maxpool3x3,conv1x1-bn-relu,maxpool3x3,output", "CjEJAAAAAAAAAAAyJnN5bnRoZXRpYy1sYWJlbHM6bWFrZV9kZW1vX2RhdGEgc2VlZD01Ci0JAAAAAAAAS0AR0d/a0LiglUAZFZ44alLP6j8hAAAAAAAAAAApAAAAAAAAAAAKGwkAAAAAAABbQBnqK7z/nmrvPyEAAAAAAAAAABCLthk="]',
]


DEFAULT_OUT = Path(__file__).resolve().parent / "fixtures" / "tf_written.tfrecord"


def main(out: Path = DEFAULT_OUT) -> None:
    import tensorflow as tf

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for record in RECORDS:
            writer.write(record)
    assert [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(tmp))] == RECORDS
    tmp.replace(out)
    print(f"wrote {len(RECORDS)} records with tensorflow {tf.__version__} to {out}")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:]))
