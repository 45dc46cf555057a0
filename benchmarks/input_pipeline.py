"""Speed of the ImageNet input pipeline against the model it has to feed.

Writes JPEG TFRecords in the standard layout (by default 2,000 images of about
400×350, ImageNet's typical size) to a temporary directory, then measures, after
a warm-up, the images/s of one input pipeline (`bn_zoo.data.imagenet`) at
224×224: training (fused decode-and-crop, flip, photometric distortions) in
float32 and bfloat16, and evaluation. The target: the training pipeline
must deliver more images/s than BN-Inception trains on this CPU; the model's
rates are earlier measurements of benchmarks/inception_speed.py (override them
with the flags).

    python benchmarks/input_pipeline.py [--num_images 2000] [--batches 30]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import machine  # noqa: E402  (benchmarks/, the script's directory)
from bn_zoo.data import imagenet, tfrecords  # noqa: E402


def images_per_second(dataset, batch_size, warmup, batches):
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=350)
    parser.add_argument("--num_shards", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--shuffle_buffer_size", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=5, help="Batches before timing.")
    parser.add_argument("--batches", type=int, default=30, help="Timed batches.")
    parser.add_argument("--model_float32", type=float, default=13.4,
                        help="BN-Inception training images/s in float32 (inception_speed.py).")
    parser.add_argument("--model_bfloat16", type=float, default=18.9,
                        help="BN-Inception training images/s in mixed_bfloat16 (inception_speed.py).")
    args = parser.parse_args()
    print(machine.describe())

    with tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        files = tfrecords.write_synthetic_imagenet(
            data_dir, num_train=args.num_images, num_validation=args.num_images // 4,
            num_classes=1000, image_size=(args.height, args.width),
            num_train_shards=args.num_shards, num_validation_shards=max(1, args.num_shards // 4))
        size = sum(os.path.getsize(f) for f in files["train"]) / args.num_images
        print(f"{args.num_images} JPEGs of ~{args.height}x{args.width} "
              f"(mean record {size / 1024:.0f} KiB) written in "
              f"{time.perf_counter() - start:.0f} s; {os.cpu_count()} CPU cores.\n")

        config = dict(source="tfrecord", data_dir=data_dir, image_size=args.image_size,
                      shuffle_buffer_size=args.shuffle_buffer_size)
        rows = [
            ("train, float32", dict(dtype="float32"), True, args.model_float32),
            ("train, bfloat16", dict(dtype="bfloat16"), True, args.model_bfloat16),
            ("eval, float32", dict(dtype="float32"), False, args.model_float32),
        ]
        title = f"pipeline (batch {args.batch_size}, {args.image_size}x{args.image_size})"
        print(f"{title:34s}{'ours img/s':>12s}{'model img/s':>13s}{'ratio':>8s}")
        for name, overrides, training, model_rate in rows:
            dataset = imagenet.build_dataset(
                {**config, **overrides}, args.batch_size, training=training)
            if not training:
                dataset = dataset.repeat()
            rate = images_per_second(dataset, args.batch_size, args.warmup, args.batches)
            print(f"{name:34s}{rate:12.1f}{model_rate:13.1f}{rate / model_rate:7.1f}x")
        print("\nTarget: the training pipeline's images/s above the model's "
              "(ratio > 1). The model rates are benchmarks/inception_speed.py's measurements "
              "of BN-Inception training on this CPU; the pipeline and the model share the "
              "CPU in training.")
        print(machine.load_average())


if __name__ == "__main__":
    main()
