from streams.engine.partitioning import murmur2, partition_for


def test_murmur2_matches_kafka_java_client_vectors():
    # vectors from Apache Kafka's UtilsTest.testMurmur2
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_partition_for_is_stable_and_in_range():
    parts = {partition_for(f"user-{i}", 4) for i in range(200)}
    assert parts == {0, 1, 2, 3}
    assert partition_for("user-1", 4) == partition_for("user-1", 4)
