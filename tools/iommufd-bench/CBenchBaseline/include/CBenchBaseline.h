int ciommufd_bench_placeholder(void);
