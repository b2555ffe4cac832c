#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  size_t n=(size_t)1<<28; /* 1 GiB floats */
  float*a=aligned_alloc(64,n*4); 
  #pragma omp parallel for
  for(size_t i=0;i<n;i++)a[i]=(float)(i&1023)*1e-3f;
  int streams=atoi(argv[1]); int pf=atoi(argv[2]);
  for(int rep=0;rep<4;rep++){
    double t=now(); float tot=0;
    #pragma omp parallel reduction(+:tot)
    {
      int T=omp_get_num_threads(), id=omp_get_thread_num();
      size_t per=n/T, base=id*per; size_t sl=per/streams;
      __m512 acc[8]; for(int s=0;s<8;s++)acc[s]=_mm512_setzero_ps();
      for(size_t i=0;i<sl;i+=16){
        for(int s=0;s<streams;s++){
          const float*p=a+base+s*sl+i;
          if(pf) _mm_prefetch((const char*)(p+pf),_MM_HINT_T0);
          acc[s]=_mm512_add_ps(acc[s],_mm512_load_ps(p));
        }
      }
      for(int s=0;s<streams;s++)tot+=_mm512_reduce_add_ps(acc[s]);
    }
    double dt=now()-t; printf("streams %d pf %d: %.1f GB/s (%g)\n",streams,pf,n*4/dt/1e9,tot);
  }
}
