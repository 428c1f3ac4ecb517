// Files a hostile user hands cnnc (issue 13): a FIFO, a huge .cnn, a device or a directory as
// the checkpoint, broken pictures. Each ends at once with exit 1 and a message that says what is
// wrong and where (check_refusal runs cnnc under `timeout`: a hang fails the test).
#include <sys/stat.h>

#include <fstream>

#include "../run_command.hpp"

using namespace cnnc_test;

TEST_CASE("cnnc check and train refuse a FIFO at once, saying what it is") {
  TempDir dir("fifo");
  std::string fifo = dir / "model.cnn";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  std::string refusal =
      "cnnc: error: cannot read '" + fifo + "': it is a named pipe (FIFO), not a regular file\n";
  check_refusal("check " + fifo, refusal + "1 of 1 file invalid\n");
  check_refusal("train " + fifo, refusal);
}

TEST_CASE("cnnc train refuses IDX files that are FIFOs at once, naming the file") {
  TempDir dir("fifo_data");
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    REQUIRE(mkfifo((dir / name).c_str(), 0600) == 0);
  check_refusal("train models/lenet5.cnn --engine generic --data " + dir.path.string(),
                "cnnc: error: " + (dir / "train-images-idx3-ubyte") +
                    ": cannot read: it is a named pipe (FIFO), not a regular file\n");
}

TEST_CASE("cnnc check reports the real size of a .cnn file too large to read") {
  TempDir dir("big_cnn");
  std::string big = dir / "big.cnn";
  std::ofstream(big) << std::string(10 << 20, '#');
  check_refusal("check " + big, "cnnc: error: cannot read '" + big +
                                    "': it is 10485760 bytes; a .cnn file is at most 1048576 "
                                    "bytes\n1 of 1 file invalid\n");
}

TEST_CASE("cnnc eval refuses a device, a directory or a missing file as the checkpoint") {
  check_refusal("eval models/lenet5.cnn --weights /dev/zero",
                "cnnc: error: checkpoint '/dev/zero': cannot read: it is a character device, not "
                "a regular file\n");
  check_refusal(
      "eval models/lenet5.cnn --weights models",
      "cnnc: error: checkpoint 'models': cannot read: it is a directory, not a regular file\n");
  check_refusal("eval models/lenet5.cnn --weights no/such/checkpoint.bin",
                "cnnc: error: checkpoint 'no/such/checkpoint.bin': cannot read: No such file or "
                "directory\n");
}

TEST_CASE("cnnc predict names the file and the fault of a PGM with maxval 0 and a cut PNG") {
  std::string predict = "predict tests/standalone/small.cnn --checkpoint none.bin ";
  check_refusal(predict + "tests/fuzz/corpus/pictures/maxval0.pgm",
                "cnnc: error: 'tests/fuzz/corpus/pictures/maxval0.pgm' is not a valid PGM: "
                "maxval 0, expected 1 to 65535 (the value of white)\n");
  check_refusal(predict + "tests/fuzz/corpus/pictures/truncated.png",
                "cnnc: error: 'tests/fuzz/corpus/pictures/truncated.png' is not a valid PNG: "
                "truncated: chunk 'IDAT' at byte 33 announces 399 bytes and a CRC, the file "
                "holds 19 after its 8-byte header\n");
}

TEST_CASE("cnnc train names an --out it cannot create and the reason, before any work") {
  TempDir dir("bad_out");
  std::ofstream(dir / "file") << "a file, not a directory";
  // Before the data: a data directory that does not exist is not what is reported.
  check_refusal(
      "train models/lenet5.cnn --data " + (dir / "no_data") + " --out " + (dir / "file") + "/run",
      "cnnc: error: cannot create the run's directory '" + (dir / "file") +
          "/run': Not a directory\n");
}
