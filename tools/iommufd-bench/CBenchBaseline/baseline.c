int ciommufd_bench_placeholder(void){return 0;}
